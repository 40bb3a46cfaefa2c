"""A produced run on a real redis-server, classified by the README's toy backend (no model to load)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from redis import Redis
from rq import Queue
from rq.job_lifecycle import record_job_failure

from chatlens.backends.classifier import CLASSIFIERS
from chatlens.core import queues as q
from chatlens.core.settings import Settings
from producer.pipeline import produce_input
from tests.redis_harness import free_port

__all__ = ["enqueue_broken_batch", "fail_summary_job", "free_port", "produce_toy_run", "toy_settings_for"]

MESSAGES = "conversation_id,message\n1,I love it\n1,What about you?\n2,It is a table.\n2,ok\n3,fine\n"


@contextmanager
def toy_settings_for(redis_url: str) -> Iterator[Settings]:
    """Settings for the toy backend, registered for as long as the context lasts."""
    CLASSIFIERS.add("toy", "tests.worker.toy_classifier:build")
    try:
        yield Settings(redis_url=redis_url, classifiers=["toy"], summarise=False, batch_size=2)
    finally:
        CLASSIFIERS._factories.pop("toy")


def produce_toy_run(settings: Settings, tmp_path: Path, run: str = "ops") -> None:
    path = tmp_path / f"{run}.csv"
    path.write_text(MESSAGES)
    counts = produce_input(settings, path, run, redis_url=settings.redis_url, warn_idle_queues=False)
    assert counts.enqueued == 5 and counts.batches == 3


def enqueue_broken_batch(settings: Settings, connection: object, run: str = "ops") -> None:
    """A classify job, with its arguments as the producer passes them (keywords), whose batch does not
    validate: it fails at once, into the failed registry."""
    queue = Queue(q.classify_queue("toy"), connection=connection, serializer=q.SERIALIZER)  # type: ignore[arg-type]
    queue.enqueue(q.CLASSIFY_JOB, batch={"run": run, "items": "not a list"}, classifier="toy")


def fail_summary_job(connection: Redis, run: str = "ops", backend: str = "extractive") -> str:
    """A summary job of `run`, shaped as the producer enqueues it, recorded as failed the way rq records
    one without a worker (no summary model is loaded): its id."""
    queue = Queue(q.summarise_queue(backend), connection=connection, serializer=q.SERIALIZER)
    conversation = {"run": run, "conversation_id": "1", "turns": ["I love it"]}
    job = queue.enqueue(q.SUMMARISE_MANY_JOB, conversations=[conversation], backend=backend)
    with connection.pipeline() as pipe:
        pipe.lrem(queue.key, 1, job.id)
        record_job_failure(job, "ValueError: a summary that failed", pipe)
        pipe.execute()
    return job.id
