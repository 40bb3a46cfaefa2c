"""A job pushed onto chatlens's queues by anyone who can write to Redis runs nothing of theirs.

Each queue a worker serves gets a foreign job (`os.mkdir` with JSON arguments, carrying its own Retry)
ahead of a real one: the worker refuses it, records it in that queue's failed registry with the reason,
logs it, never retries it, and goes on with the real job.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import redis
from rq import Queue, Retry
from rq.callbacks import Callback
from rq.job import JobStatus

from chatlens.cli.job_functions import JOB_FUNCTIONS
from chatlens.core import keys
from chatlens.core import queues as q
from chatlens.core.settings import Settings
from producer.pipeline import produce_input
from tests.helpers import run_chatlens, subprocess_env
from worker.job import ContextJob
from worker.runner import create_worker

pytestmark = pytest.mark.slow


def push_foreign(connection: redis.Redis, queue_name: str, target: Path, **options: object) -> str:
    queue = Queue(queue_name, connection=connection, serializer=q.SERIALIZER)
    job = queue.enqueue("os.mkdir", str(target), retry=Retry(max=3), **options)
    return job.id


def test_foreign_jobs_are_refused_on_every_queue_not_retried_and_the_worker_goes_on(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    connection = redis.Redis.from_url(redis_url)
    settings = Settings(redis_url=redis_url)
    served = [q.classify_queue("default"), q.summarise_queue("extractive"), settings.eval_queue]
    foreign = {name: push_foreign(connection, name, tmp_path / f"pwned-{i}") for i, name in enumerate(served)}
    # A chatlens function name cannot smuggle in a callback either.
    smuggled = Queue(served[0], connection=connection, serializer=q.SERIALIZER).enqueue(
        q.CLASSIFY_JOB,
        kwargs={"batch": {"run": "x", "items": []}, "classifier": "default"},
        on_failure=Callback("os.mkdir"),
        on_success=Callback("os.mkdir"),
        retry=Retry(max=3),
    )
    path = tmp_path / "m.csv"
    path.write_text("conversation_id,message\n1,I love this\n1,Do you?\n2,It is a table.\n")
    produce_input(settings, path, "real", redis_url=redis_url, warn_idle_queues=False)

    worker = create_worker(settings, connection, served, threads=1, job_functions=JOB_FUNCTIONS)
    with caplog.at_level(logging.ERROR, logger="chatlens.worker"):
        assert worker.work(burst=True)

    assert not any(p.name.startswith("pwned") for p in tmp_path.iterdir())
    for name, job_id in {**foreign, "smuggled": smuggled.id}.items():
        queue_name = served[0] if name == "smuggled" else name
        queue = Queue(queue_name, connection=connection, serializer=q.SERIALIZER)
        job = ContextJob.fetch(job_id, connection=connection, serializer=q.SERIALIZER)
        assert job.get_status() == JobStatus.FAILED
        assert job_id in queue.failed_job_registry.get_job_ids()
        assert job_id not in queue.scheduled_job_registry.get_job_ids()  # not waiting for a retry
        assert len(job.results()) == 1  # ran (and was refused) once
        result = job.latest_result()
        assert result is not None and "ForeignJobError: refused job" in (result.exc_string or "")
        assert any(f"refused job {job_id}" in r.getMessage() for r in caplog.records), name
    assert not (tmp_path / "pwned-0").exists()
    # The real jobs behind them ran.
    assert connection.hlen(keys.results("real", "default")) == 3
    assert connection.hlen(keys.summaries("real")) == 2

    # Listed as foreign, and never requeued.
    env = subprocess_env(CHATLENS_REDIS_URL=redis_url)
    listed = run_chatlens("failed", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {row["job_id"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {*foreign.values(), smuggled.id}
    assert all(row["foreign"] for row in rows.values())
    assert rows[foreign[served[0]]]["what"] == "foreign: os.mkdir"
    assert "not a chatlens job function" in rows[foreign[served[0]]]["reason"]
    refused = run_chatlens("requeue", foreign[served[1]], env=env)
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "foreign" in refused.stderr, refused.stderr
    everything = run_chatlens("requeue", "--all", env=env)
    assert everything.returncode == 0, everything.stderr
    assert "0 job(s) requeued; 4 foreign job(s) left" in everything.stdout
    assert all(Queue(n, connection=connection).count == 0 for n in served)
