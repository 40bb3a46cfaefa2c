"""produce -> a worker subprocess -> eval -> results, all through the `chatlens` command, on a real Redis."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import redis

from chatlens.cli.demo import EXAMPLE_FILE
from chatlens.core import keys
from chatlens.core.store import RunStore
from tests.helpers import run_chatlens, subprocess_env

# A real model, a subprocess or a real redis-server: the full suite only, not `make test-fast`.
pytestmark = pytest.mark.slow


def test_produce_worker_eval(redis_url: str, tmp_path: Path) -> None:
    env = subprocess_env(CHATLENS_REDIS_URL=redis_url)
    produced = run_chatlens("produce", str(EXAMPLE_FILE), "--run", "e2e", "--batch-size", "8", env=env)
    assert produced.returncode == 0, produced.stderr
    assert (
        "read 97 / dropped-missing 1 / dropped-duplicate 1 / rejected 0 / not-selected 0 / enqueued 95"
        in (produced.stdout)
    )

    worked = run_chatlens("worker", "--burst", "--threads", "1", env=env)
    assert worked.returncode == 0, worked.stderr

    connection = redis.Redis.from_url(redis_url)
    message_ids = set(connection.hkeys(keys.messages("e2e")))
    result_ids = connection.hkeys(keys.results("e2e", "default"))
    assert len(message_ids) == 95
    assert (
        len(result_ids) == len(set(result_ids)) == 95 and set(result_ids) == message_ids
    )  # exactly one each

    # One summary per conversation, from the offline default, on its own queue.
    conversations = {m.conversation_id for m in RunStore(connection, 3600).messages("e2e").values()}
    summaries = RunStore(connection, 3600).summaries("e2e")
    assert set(summaries) == conversations and len(conversations) == 12
    assert all(s.backend == "extractive" and s.text and s.calls == 1 for s in summaries.values())

    out = tmp_path / "report"
    evaluated = run_chatlens("eval", "--run", "e2e", "--out", str(out), env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    model = metrics["models"]["default"]
    assert metrics["messages"] == 95 and model["n"] == 95 and model["coverage"] == 1.0
    assert 0 < model["accuracy"] <= 1 and sum(map(sum, model["confusion_matrix"])) == 95
    assert (out / "confusion_default.png").exists() and (out / "report.md").exists()

    exported = run_chatlens("results", "--run", "e2e", "--output", str(tmp_path / "r.csv"), env=env)
    assert exported.returncode == 0, exported.stderr
    with (tmp_path / "r.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 95 and all(r["default.label"] for r in rows)

    exported = run_chatlens("results", "--run", "e2e", "--summaries", "--format", "jsonl", env=env)
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert sorted(r["conversation_id"] for r in records) == sorted(conversations)
    assert metrics["conversations_summarised"] == 12

    again = run_chatlens("produce", str(EXAMPLE_FILE), "--run", "e2e", env=env)
    assert "enqueued 0 / already-present 95" in again.stdout
