"""The nightly evaluation: RQ's cron scheduler, driven with a short interval against a real redis-server."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import zlib
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from chatlens.cli.job_functions import JOB_FUNCTIONS
from chatlens.core.schemas import Message, Prediction, RunInfo
from chatlens.core.settings import get_settings
from chatlens.core.store import RunStore
from tests.helpers import chatlens_cmd, store_messages, subprocess_env
from worker.runner import create_worker

# A real model, a subprocess or a real redis-server: the full suite only, not `make test-fast`.
pytestmark = pytest.mark.slow


def seed_run(connection: redis.Redis, run: str, created: float) -> None:
    store = RunStore(connection, 3600)
    store_messages(store, run, [Message(id="m1", conversation_id="1", position=0, text="hi", label="Happy")])
    store.save_run_info(
        RunInfo(run=run, source="t", dataset_hash="h", messages=1, labelled=1, classifiers=["default"])
    )
    connection.zadd("chatlens:runs", {run: created})
    store.write_results(
        run,
        "m",
        [
            Prediction(
                message_id="m1",
                model="m",
                model_version="1",
                label="Happy",
                confidence=1.0,
                batch_size=1,
                batch_latency_ms=1,
                worker="w",
            )
        ],
        [],
    )


def test_cron_enqueues_json_eval_jobs_that_a_worker_runs(redis_url: str, tmp_path: Path) -> None:
    connection = redis.Redis.from_url(redis_url)
    seed_run(connection, "older", 1000.0)
    seed_run(connection, "newest", 2000.0)
    reports = tmp_path / "nightly"
    env = subprocess_env(
        CHATLENS_REDIS_URL=redis_url, CHATLENS_NIGHTLY_INTERVAL_S="1", CHATLENS_REPORTS_DIR=str(reports)
    )
    scheduler = subprocess.Popen(chatlens_cmd("cron"), env=env, stderr=subprocess.PIPE, text=True)
    queue = Queue("eval", connection=connection, serializer=JSONSerializer)
    try:
        deadline = time.monotonic() + 60
        while queue.count < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        scheduler.send_signal(signal.SIGINT)
        scheduler.wait(30)
    assert queue.count >= 2, scheduler.stderr.read() if scheduler.stderr else ""
    job = queue.get_jobs()[0]
    assert job.func_name == "eval.jobs.evaluate_latest_run"
    json.loads(zlib.decompress(connection.hget(f"rq:job:{job.id}", "data")))  # JSON, not pickle

    # The worker hands its own settings to the job: this test's reports dir, not the environment's.
    settings = get_settings().model_copy(update={"reports_dir": reports})
    create_worker(settings, connection, ["eval"], job_functions=JOB_FUNCTIONS).work(
        burst=True, logging_level="WARNING"
    )
    written = sorted(reports.glob("newest/*/metrics.json"))
    assert written and not (reports / "older").exists()
    assert json.loads(written[0].read_text())["models"]["m"]["accuracy"] == 1.0
