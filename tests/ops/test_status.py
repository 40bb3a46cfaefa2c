"""`chatlens status`: every figure equals what Redis holds, read here directly (HLEN, LLEN, ZCARD)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from chatlens.core import keys
from chatlens.core.schemas import LastEval, Summary, SummaryError
from chatlens.core.settings import Settings
from chatlens.core.store import RunStore
from chatlens.ops.status import gather_status, messages_per_s
from tests.fixtures.toy_run import enqueue_broken_batch, fail_summary_job, produce_toy_run
from tests.helpers import chatlens_cmd, run_chatlens, subprocess_env
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


def summary(cid: str, turns: int) -> Summary:
    return Summary(conversation_id=cid, backend="extractive", model_id="m", text="t", turns=turns,
                   input_tokens=1, output_tokens=1, calls=1, latency_ms=1.0, worker="w")  # fmt: skip


def test_a_run_with_summaries_still_queued_is_not_done(
    toy_settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    connection = redis.Redis.from_url(redis_url)
    produce_toy_run(toy_settings.model_copy(update={"summarise": True}), tmp_path)
    worker = create_worker(toy_settings, connection, ["classify-toy"], name="classify-only")
    worker.work(burst=True, logging_level="WARNING")  # every message classified; no summary worker

    (run,) = status_json(redis_url, "--run", "ops")["runs"]
    assert run["remaining"] == 0 and run["models"]["toy"]["done"] == connection.hlen(
        keys.results("ops", "toy")
    )
    assert run["summaries"] == connection.hlen(keys.summaries("ops")) == 0
    assert run["summaries_expected"] == connection.hlen(keys.conversations("ops")) == 3
    assert run["unsummarised"] == run["summaries_remaining"] == 3
    assert run["unsummarised_ids"] == sorted(k.decode() for k in connection.hkeys(keys.conversations("ops")))
    summary_queue = connection.llen("rq:queue:summarise-extractive")
    assert summary_queue > 0
    # Summaries queued and no worker on them: not done, and no ETA.
    assert not run["finished"] and run["eta_s"] is None and run["eta_summaries_s"] is None

    store = RunStore(connection, toy_settings.result_ttl_s)
    store.write_summary("ops", summary("1", turns=1))  # conversation 1 has 2 messages: a stale summary
    store.write_summary("ops", summary("2", turns=2))
    store.write_summary_error("ops", SummaryError(conversation_id="3", backend="extractive", error="x"))
    (run,) = status_json(redis_url, "--run", "ops")["runs"]
    assert run["summaries"] == connection.hlen(keys.summaries("ops")) == 2
    assert run["summary_errors"] == connection.hlen(keys.summary_errors("ops")) == 1
    assert run["unsummarised_ids"] == ["1"] and not run["finished"]

    store.write_summary("ops", summary("1", turns=2))
    (run,) = status_json(redis_url, "--run", "ops")["runs"]
    assert run["unsummarised"] == 0 and run["finished"] and run["eta_s"] == 0.0


def test_a_run_produced_without_summaries_expects_none(
    toy_settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    connection = redis.Redis.from_url(redis_url)
    produce_toy_run(toy_settings, tmp_path)  # summarise=False
    create_worker(toy_settings, connection, ["classify-toy"]).work(burst=True, logging_level="WARNING")
    (run,) = status_json(redis_url, "--run", "ops")["runs"]
    assert run["summaries_expected"] == 0 and run["conversations"] == 3
    assert run["finished"] and run["eta_s"] == 0.0


def test_failed_jobs_of_a_run_are_counted_in_every_queue(
    toy_settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    connection = redis.Redis.from_url(redis_url)
    produce_toy_run(toy_settings, tmp_path)
    enqueue_broken_batch(toy_settings, connection)
    create_worker(toy_settings, connection, ["classify-toy"]).work(burst=True, logging_level="WARNING")
    fail_summary_job(connection)
    env = subprocess_env(CHATLENS_REDIS_URL=redis_url, CHATLENS_CLASSIFIERS="toy")
    listed = run_chatlens("failed", "--run", "ops", "--json", env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    failed = json.loads(listed.stdout)
    assert sorted(f["queue"] for f in failed) == ["classify-toy", "summarise-extractive"]
    in_registries = connection.zcard("rq:failed:classify-toy") + connection.zcard(
        "rq:failed:summarise-extractive"
    )
    (run,) = status_json(redis_url, "--run", "ops")["runs"]
    assert run["failed_jobs"] == len(failed) == in_registries == 2
    # Every message has its result; a failed summary job of a run that expects none still counts.
    assert run["remaining"] == 0


def test_no_eta_without_a_live_worker_though_results_came_in_the_last_minute(
    toy_settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    connection = redis.Redis.from_url(redis_url)
    produce_toy_run(toy_settings, tmp_path)
    # A worker wrote 2 results this minute and died: the throughput is recent, nothing is moving.
    connection.hset(keys.throughput("ops"), str(int(time.time()) // 60), 2)
    (run,) = status_json(redis_url, "--run", "ops")["runs"]
    assert run["messages_per_s"] > 0 and run["remaining"] == 5
    assert run["eta_s"] is None and run["eta_classify_s"] is None and not run["finished"]


def test_the_screen_fits_80_columns_and_never_cuts_a_worker_name(
    toy_settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    connection = redis.Redis.from_url(redis_url)
    produce_toy_run(toy_settings.model_copy(update={"summarise": True}), tmp_path)
    name = "ops-worker-on-a-host-with-a-long-name-0123456789"
    worker = create_worker(toy_settings, connection, ["classify-toy"], name=name)
    worker.register_birth()
    try:
        env = subprocess_env(CHATLENS_REDIS_URL=redis_url, CHATLENS_CLASSIFIERS="toy", COLUMNS="80")
        screen = run_chatlens("status", "--run", "ops", env=env, timeout=120)
    finally:
        worker.register_death()
    assert screen.returncode == 0, screen.stderr
    lines = screen.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, screen.stdout
    assert name in screen.stdout and "…" not in screen.stdout, screen.stdout
    assert "0/3" in screen.stdout  # summaries written / expected
    assert "ops: 3 conversation(s) without a summary: 1, 2, 3" in screen.stdout


def test_watch_prints_a_snapshot_per_interval_when_piped(
    toy_settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    produce_toy_run(toy_settings, tmp_path)
    env = subprocess_env(CHATLENS_REDIS_URL=redis_url, CHATLENS_CLASSIFIERS="toy")
    proc = subprocess.Popen(
        chatlens_cmd("status", "--watch", "--interval", "0.5"), env=env, stdout=subprocess.PIPE, text=True
    )
    time.sleep(8)  # the command's start (imports) and a few intervals
    proc.send_signal(signal.SIGINT)
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert stdout.count("chatlens status at") >= 2, stdout


def test_drop_removes_the_runs_failed_jobs_and_no_other_runs(
    toy_settings: Settings, redis_url: str, tmp_path: Path
) -> None:
    connection = redis.Redis.from_url(redis_url)
    produce_toy_run(toy_settings, tmp_path)
    enqueue_broken_batch(toy_settings, connection)
    create_worker(toy_settings, connection, ["classify-toy"]).work(burst=True, logging_level="WARNING")
    fail_summary_job(connection)
    kept = fail_summary_job(connection, run="other")
    env = subprocess_env(CHATLENS_REDIS_URL=redis_url, CHATLENS_CLASSIFIERS="toy")
    dropped = run_chatlens("drop", "--run", "ops", "--yes", env=env, timeout=120)
    assert dropped.returncode == 0, dropped.stderr
    assert "2 failed job(s) removed" in dropped.stdout
    assert connection.zcard("rq:failed:classify-toy") == 0
    assert [j.decode() for j in connection.zrange("rq:failed:summarise-extractive", 0, -1)] == [kept]
    listed = run_chatlens("failed", "--json", env=env, timeout=120)
    assert [f["run"] for f in json.loads(listed.stdout)] == ["other"]
