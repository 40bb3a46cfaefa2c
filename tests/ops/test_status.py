"""`chatlens status`: every figure equals what Redis holds, read here directly (HLEN, LLEN, ZCARD)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from chatlens.core import keys
from chatlens.core.schemas import LastEval
from chatlens.core.settings import Settings
from chatlens.ops.status import gather_status, messages_per_s
from tests.fixtures.toy_run import enqueue_broken_batch, produce_toy_run
from tests.helpers import run_chatlens, subprocess_env
from worker.runner import create_worker

pytestmark = pytest.mark.slow


def status_json(redis_url: str, *args: str) -> dict:
    env = subprocess_env(CHATLENS_REDIS_URL=redis_url, CHATLENS_CLASSIFIERS="toy", CHATLENS_SUMMARISE="false")
    done = run_chatlens("status", "--json", *args, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_status_json_equals_redis_before_and_after_a_worker(
    toy_settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    connection = redis.Redis.from_url(redis_url)
    produce_toy_run(toy_settings, tmp_path)
    enqueue_broken_batch(toy_settings, connection)

    before = status_json(redis_url)
    queue = next(row for row in before["queues"] if row["name"] == "classify-toy")
    assert queue["depth"] == connection.llen("rq:queue:classify-toy") == 4
    assert queue["workers"] == 0 and queue["failed"] == 0 and queue["oldest_age_s"] is not None
    assert before["workers"] == []
    (run,) = before["runs"]
    assert run["run"] == "ops" and run["messages"] == connection.hlen(keys.messages("ops")) == 5
    assert run["models"] == {} and run["remaining"] == 5 and not run["finished"]

    worker = create_worker(toy_settings, connection, ["classify-toy"], name="ops-worker")
    worker.work(burst=True, logging_level="WARNING")
    # A live worker as `chatlens status` sees one: registered, its job counts in its hash (where RQ
    # bumps them; register_birth starts them afresh), with this process's peak RSS and model loads.
    worker.register_birth()
    try:
        connection.hset(worker.key, mapping={"successful_job_count": 3, "failed_job_count": 1})
        after = status_json(redis_url, "--run", "ops")
    finally:
        worker.register_death()

    queue = next(row for row in after["queues"] if row["name"] == "classify-toy")
    assert queue["depth"] == connection.llen("rq:queue:classify-toy") == 0
    assert queue["failed"] == connection.zcard("rq:failed:classify-toy") == 1
    assert queue["workers"] == 1
    (row,) = after["workers"]
    assert row["name"] == "ops-worker" and row["queues"] == ["classify-toy"]
    assert (row["jobs_done"], row["jobs_failed"]) == (3, 1)
    process = f"{row['host']}:{row['pid']}"
    assert row["peak_rss_mb"] == float(connection.hget(keys.WORKER_PEAK_RSS, process))
    assert row["models"] == {"toy": int(connection.hget(keys.MODEL_LOADS, f"{process}:toy"))}

    (run,) = after["runs"]
    assert run["models"] == {
        "toy": {
            "done": connection.hlen(keys.results("ops", "toy")),
            "errors": connection.hlen(keys.errors("ops", "toy")),
            "total": connection.hlen(keys.messages("ops")),
        }
    }
    assert run["models"]["toy"]["done"] == 5
    assert run["failed_jobs"] == 1 and run["finished"] and run["eta_s"] == 0.0
    # Throughput: the per-minute buckets the store wrote, read back with the same arithmetic.
    buckets = {int(k): int(v) for k, v in connection.hgetall(keys.throughput("ops")).items()}
    assert sum(buckets.values()) == 5
    now = time.time()
    assert 0 < run["messages_per_s"] <= 5 / 60 + 1e-9
    assert messages_per_s(connection, "ops", now) == pytest.approx(run["messages_per_s"], abs=5 / 60)


def test_status_shows_the_last_eval_and_its_regression_flag(
    toy_settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    connection = redis.Redis.from_url(redis_url)
    produce_toy_run(toy_settings, tmp_path)
    record = LastEval(
        run="ops",
        out_dir="reports/ops/x",
        models={"toy": {"accuracy": 0.5, "macro_f1": 0.4, "recall:Happy": 1.0}},
        regressions=["toy macro_f1 0.600 -> 0.400 (-0.200)"],
    )
    connection.set(keys.last_eval("ops"), record.model_dump_json())
    (run,) = gather_status(connection, toy_settings)["runs"]
    assert run["last_eval"]["models"] == {"toy": {"accuracy": 0.5, "macro_f1": 0.4}}
    assert run["last_eval"]["regression"] is True


def test_status_screen_and_unknown_run(toy_settings: Settings, redis_url: str, tmp_path: Path) -> None:
    produce_toy_run(toy_settings, tmp_path)
    env = subprocess_env(CHATLENS_REDIS_URL=redis_url, CHATLENS_CLASSIFIERS="toy", COLUMNS="200")
    screen = run_chatlens("status", env=env, timeout=120)
    assert screen.returncode == 0, screen.stderr
    assert "classify-toy" in screen.stdout and "no live worker" in screen.stdout and "ops" in screen.stdout
    missing = run_chatlens("status", "--run", "nope", env=env, timeout=120)
    assert missing.returncode == 2 and "no run named 'nope'" in missing.stderr
