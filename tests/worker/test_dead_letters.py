"""Dead letters on a real redis-server: a batch that keeps timing out and a conversation that keeps
failing end, after their retries, in the failed registry; `chatlens failed` lists them and `chatlens
requeue` puts them back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from rq import Queue, Retry

from chatlens.cli.job_functions import JOB_FUNCTIONS
from chatlens.core import keys
from chatlens.core import queues as q
from chatlens.core.settings import Settings
from producer.pipeline import produce_input
from tests.fixtures import slow_classifier
from tests.helpers import run_chatlens, subprocess_env
from worker.dead_letters import failed_jobs, requeue
from worker.job import ContextJob
from worker.runner import create_worker

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def slow_registered() -> None:
    slow_classifier.register()


def test_poison_jobs_end_in_the_failed_registry_and_come_back_on_requeue(
    redis_url: str, tmp_path: Path
) -> None:
    connection = redis.Redis.from_url(redis_url)
    # A 1 s job timeout against a 4 s batch: every try times out. Two retries, no backoff.
    settings = Settings(
        classifiers=["slow"], summarise=False, batch_size=2, job_timeout_s=1, retry_intervals_s=[0, 0]
    )
    path = tmp_path / "m.csv"
    path.write_text("conversation_id,message\n1,first message\n2,second message\n")
    produce_input(settings, path, "poison", redis_url=redis_url, warn_idle_queues=False)
    # A conversation whose record is not a conversation: it raises on every try.
    broken = Queue(q.summarise_queue("extractive"), connection=connection, serializer=q.SERIALIZER).enqueue(
        q.SUMMARISE_JOB,
        kwargs={
            "conversation": {"run": "other", "conversation_id": "c7", "turns": 3},
            "backend": "extractive",
        },
        retry=Retry(max=1),
    )
    worker = create_worker(settings, connection, [q.classify_queue("slow"), q.summarise_queue("extractive")])
    worker.work(burst=True)

    items = failed_jobs(connection, settings, JOB_FUNCTIONS)
    assert [(f.queue, f.run, f.foreign) for f in items] == [
        ("classify-slow", "poison", False),
        ("summarise-extractive", "other", False),
    ] or [(f.queue, f.run, f.foreign) for f in items] == [
        ("summarise-extractive", "other", False),
        ("classify-slow", "poison", False),
    ]
    by_queue = {f.queue: f for f in items}
    timed_out = by_queue["classify-slow"]
    assert timed_out.what == "classify 2 messages (slow)"
    assert "JobTimeoutException" in timed_out.reason and timed_out.failed_at
    job = ContextJob.fetch(timed_out.job_id, connection=connection, serializer=q.SERIALIZER)
    assert job.retries_left == 0  # failed for good only after both retries
    assert by_queue["summarise-extractive"].what == "summarise conversation c7 (extractive)"
    assert by_queue["summarise-extractive"].job_id == broken.id
    assert by_queue["summarise-extractive"].reason.startswith("ValidationError: 1 validation error")
    assert [f.job_id for f in failed_jobs(connection, settings, JOB_FUNCTIONS, run="poison")] == [
        timed_out.job_id
    ]

    env = subprocess_env(CHATLENS_REDIS_URL=redis_url)
    listed = run_chatlens("failed", "--run", "poison", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [row["job_id"] for row in json.loads(listed.stdout)] == [timed_out.job_id]
    table = run_chatlens("failed", env=env)
    assert "2 failed job(s)" in table.stdout and "classify 2 messages (slow)" in table.stdout

    unknown = run_chatlens("requeue", "no-such-job", env=env)
    assert unknown.returncode == 2 and "no-such-job" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    neither = run_chatlens("requeue", env=env)
    assert neither.returncode == 2 and "--all" in neither.stderr

    moved = run_chatlens("requeue", "--all", "--queue", "classify-slow", env=env)
    assert moved.returncode == 0, moved.stderr
    assert f"requeued {timed_out.job_id} on classify-slow" in moved.stdout
    assert Queue("classify-slow", connection=connection).job_ids == [timed_out.job_id]
    assert [f.queue for f in failed_jobs(connection, settings, JOB_FUNCTIONS)] == ["summarise-extractive"]
    again, foreign = requeue(connection, settings, JOB_FUNCTIONS, [broken.id])
    assert [f.job_id for f in again] == [broken.id] and foreign == []
    assert failed_jobs(connection, settings, JOB_FUNCTIONS) == []


def test_the_job_timeout_is_the_workers_and_requeue_applies_the_current_one(
    redis_url: str, tmp_path: Path
) -> None:
    connection = redis.Redis.from_url(redis_url)
    produced = Settings(classifiers=["slow"], summarise=False, batch_size=2, retry_intervals_s=[0])
    path = tmp_path / "m.csv"
    path.write_text("conversation_id,message\n1,first message\n2,second message\n")
    produce_input(produced, path, "timeout", redis_url=redis_url, warn_idle_queues=False)
    (queued,) = Queue(q.classify_queue("slow"), connection=connection, serializer=q.SERIALIZER).get_jobs()
    assert queued.timeout == produced.job_timeout_s == 600  # what the producer had
    # The worker's 1 s against a 4 s batch: every try times out, whatever the job was enqueued with.
    running = produced.model_copy(update={"job_timeout_s": 1})
    create_worker(running, connection, [q.classify_queue("slow")]).work(burst=True)
    (failed,) = failed_jobs(connection, running, JOB_FUNCTIONS, run="timeout")
    assert "JobTimeoutException" in failed.reason
    assert connection.hlen(keys.results("timeout", "slow")) == 0

    now = produced.model_copy(update={"job_timeout_s": 30})
    moved, _ = requeue(connection, now, JOB_FUNCTIONS, None, run="timeout")
    assert [m.job_id for m in moved] == [failed.job_id]
    job = ContextJob.fetch(failed.job_id, connection=connection, serializer=q.SERIALIZER)
    assert job.timeout == 30 and job.get_status() == "queued"
    create_worker(now, connection, [q.classify_queue("slow")]).work(burst=True)
    assert connection.hlen(keys.results("timeout", "slow")) == 2
