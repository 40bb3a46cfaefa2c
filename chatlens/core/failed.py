"""The failed jobs of chatlens's queues, by the run each names (`queues.job_run`): what `chatlens status`
counts for a run and `chatlens drop` deletes with it (`chatlens failed` lists them with their reasons,
worker/dead_letters.py, reading the run the same way)."""

from __future__ import annotations

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry

from chatlens.core import queues as q
from chatlens.core.settings import Settings

QUEUE_KEY_PREFIX = "rq:queue:"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def known_queues(connection: Redis, settings: Settings) -> list[str]:
    """The queues the settings name, and every chatlens queue rq knows of (another host's backends)."""
    known = {_text(k).removeprefix(QUEUE_KEY_PREFIX) for k in connection.smembers(Queue.redis_queues_keys)}
    wanted = {*q.default_queues(settings), settings.eval_queue}
    return sorted(n for n in known | wanted if q.is_chatlens_queue(n, settings))


def failed_by_run(connection: Redis, queue: str) -> dict[str, list[str]]:
    """Run -> the ids of its jobs in `queue`'s failed registry. A job that cannot be decoded, or names
    no run (the evaluation, a foreign job), is left out."""
    registry = FailedJobRegistry(queue, connection=connection, serializer=q.SERIALIZER)
    found: dict[str, list[str]] = {}
    ids = registry.get_job_ids()
    for job_id, job in zip(
        ids, Job.fetch_many(ids, connection=connection, serializer=q.SERIALIZER), strict=True
    ):
        if job is None:
            continue
        try:
            run = q.job_run(job.func_name, job.kwargs, job.meta)
        except Exception:  # undecodable arguments: a failed job still, naming no run
            run = None
        if run is not None:
            found.setdefault(run, []).append(job_id)
    return found


def drop_failed(connection: Redis, settings: Settings, run: str) -> int:
    """Delete `run`'s failed jobs from every chatlens queue's failed registry; how many."""
    dropped = 0
    for name in known_queues(connection, settings):
        ids = failed_by_run(connection, name).get(run, [])
        registry = FailedJobRegistry(name, connection=connection, serializer=q.SERIALIZER)
        for job_id in ids:
            registry.remove(job_id, delete_job=True)
        dropped += len(ids)
    return dropped
