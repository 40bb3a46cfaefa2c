"""A real worker process on a real redis-server: one model load for many jobs; offline refusal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from chatlens.core import keys
from chatlens.core.settings import Settings
from producer.pipeline import produce_input
from tests.helpers import subprocess_env

# A real model, a subprocess or a real redis-server: the full suite only, not `make test-fast`.
pytestmark = pytest.mark.slow


def test_one_model_load_for_many_jobs(redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("conversation_id,message\n" + "".join(f"{i % 4},message number {i}\n" for i in range(60)))
    counts = produce_input(Settings(batch_size=3), path, "loads", redis_url=redis_url)
    assert counts.batches == 20
    proc = subprocess.run(
        [sys.executable, "-m", "worker", "--burst", "--threads", "1", "--log-level", "WARNING"],
        env=subprocess_env(CHATLENS_REDIS_URL=redis_url),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    connection = redis.Redis.from_url(redis_url)
    assert connection.hlen(keys.results("loads", "default")) == 60
    loads = {k.decode(): int(v) for k, v in connection.hgetall(keys.MODEL_LOADS).items()}
    # One process, one load per model: twenty classify jobs and four summary jobs.
    assert sorted(k.rsplit(":", 1)[1] for k in loads) == ["default", "summarise-extractive"], loads
    assert list(loads.values()) == [1, 1], loads
    assert connection.hlen(keys.summaries("loads")) == 4
    assert float(connection.hget(keys.WORKER_PEAK_RSS, next(iter(loads)).rsplit(":", 1)[0])) > 50


def test_worker_refuses_to_start_without_its_model(redis_url: str, tmp_path: Path) -> None:
    for source in (str(tmp_path / "no-such-model"), "no-such-org/no-such-model"):
        proc = subprocess.run(
            [sys.executable, "-m", "worker", "--burst"],
            env=subprocess_env(
                CHATLENS_REDIS_URL=redis_url, CHATLENS_ENCODER_PATH=source, HF_HUB_OFFLINE="1"
            ),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and source in lines[0] and "HF_HUB_OFFLINE" in lines[0], proc.stderr
