"""Getting a dead worker's batch running again, and riding out a Redis restart.

RQ's SimpleWorker gives a running job's execution a time-to-live of the job timeout + 60 s and never
refreshes it while the job runs, so a killed worker's batch sat in the started registry for up to
11 minutes. Here each worker keeps its running execution alive with a short TTL from a heartbeat thread,
and every worker, every `reclaim_interval_s` (one at a time, under a Redis lock), re-enqueues the jobs
whose execution has gone silent. A reclaimed job goes to the front of its queue and uses up one of its
retries; a job with none left (a batch that keeps killing its worker) ends in the failed registry.
Results are written per message id (HSET), so running a batch again is safe: at-least-once execution,
exactly-once results.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import JobStatus
from rq.job_lifecycle import record_job_failure
from rq.utils import as_text

if TYPE_CHECKING:
    from rq.worker import BaseWorker

log = logging.getLogger("chatlens.recovery")

RECLAIM_LOCK = "chatlens:lock:reclaim"
REDIS_LOST = (RedisConnectionError, RedisTimeoutError)


@dataclass(frozen=True)
class Reclaimed:
    queue: str
    job_id: str
    worker: str
    requeued: bool  # False: no retries left, moved to the failed registry


def _execution_worker(connection: Redis, entry: str) -> str:
    name = connection.hget(f"rq:execution:{entry}", "worker_name")
    return as_text(name) if name else ""


def reclaim(
    queue: Queue, *, expired_before: float | None = None, workers: Collection[str] = ()
) -> list[Reclaimed]:
    """Re-enqueue the started jobs of `queue` whose execution expired before `expired_before`
    (a Unix time), or that belong to one of `workers` (a worker that knows it lost them)."""
    connection = queue.connection
    registry = queue.started_job_registry
    found: list[Reclaimed] = []
    entries: list[tuple[bytes, float]] = connection.zrange(registry.key, 0, -1, withscores=True)  # type: ignore[assignment]
    for raw, score in entries:
        entry = as_text(raw)
        job_id = entry.split(":", 1)[0]
        worker = _execution_worker(connection, entry)
        expired = expired_before is not None and score < expired_before
        if not expired and worker not in workers:
            continue
        if not connection.zrem(registry.key, entry):
            continue  # another worker's pass claimed it first
        try:
            job = queue.job_class.fetch(job_id, connection=connection, serializer=queue.serializer)
        except NoSuchJobError:
            continue
        worker = worker or job.worker_name or ""  # its execution record may have expired already
        with connection.pipeline() as pipe:
            pipe.delete(f"rq:execution:{entry}")
            # A finished or failed job's leftover entry is not an abandoned batch.
            if job.get_status(refresh=False) != JobStatus.STARTED:
                pipe.execute()
                continue
            requeued = job.retries_left is None or job.retries_left > 0
            if requeued:
                if job.retries_left:
                    job.retries_left -= 1
                queue._enqueue_job(job, pipeline=pipe, at_front=True)
            else:
                reason = f"AbandonedJobError: its worker {worker or '?'} died on every try"
                record_job_failure(job, reason, pipe)
            pipe.execute()
        found.append(Reclaimed(queue.name, job_id, worker, requeued))
        log.warning(
            "reclaimed job %s of dead worker %s on %s: %s",
            job_id,
            worker or "?",
            queue.name,
            f"re-enqueued, {job.retries_left} retries left" if requeued else "no retries left, failed",
        )
    return found


def reclaim_all(queues: list[Queue], interval_s: float) -> list[Reclaimed]:
    """One reclaim pass over `queues`, by at most one worker per `interval_s`."""
    if not queues or not queues[0].connection.set(RECLAIM_LOCK, "1", nx=True, px=int(interval_s * 1000)):
        return []
    cutoff = time.time()
    return [r for q in queues for r in reclaim(q, expired_before=cutoff)]


class Heartbeat(threading.Thread):
    """Keeps this worker's running execution alive, and runs the reclaim passes, on its own clock: the
    work loop is busy inside a batch and RQ's SimpleWorker has no monitor to do it."""

    def __init__(self, worker: BaseWorker, interval_s: float, reclaim_interval_s: float) -> None:
        super().__init__(name=f"heartbeat-{worker.name}", daemon=True)
        self.worker = worker
        self.interval_s = interval_s
        self.reclaim_interval_s = reclaim_interval_s
        self.stopped = threading.Event()
        self._last_error_log = 0.0

    def run(self) -> None:
        next_reclaim = 0.0
        while not self.stopped.wait(self.interval_s if next_reclaim else 0):
            try:
                self.beat()
                if time.monotonic() >= next_reclaim:
                    next_reclaim = time.monotonic() + self.reclaim_interval_s
                    reclaim_all(self.worker.queues, self.reclaim_interval_s)
            except RedisError as exc:  # Redis is away: the work loop reconnects; try again next beat
                self._log_at_most_every(f"heartbeat: Redis unavailable ({exc}); retrying")

    def beat(self) -> None:
        for execution in list(self.worker.executions.values()):
            job = execution._job
            if job is not None:
                self.worker.maintain_heartbeats(job, execution)

    def _log_at_most_every(self, line: str, seconds: float = 10.0) -> None:
        if time.monotonic() - self._last_error_log >= seconds:
            self._last_error_log = time.monotonic()
            log.warning(line)


def wait_for_redis(connection: Redis, max_wait_s: float, stop: Callable[[], bool] = lambda: False) -> int:
    """Block until Redis answers a PING (or `stop()` is true), backing off 1 s, 2 s, 4 s ... up to
    `max_wait_s`, one log line per attempt. Returns the number of failed attempts."""
    wait, failures = 1.0, 0
    while not stop():
        try:
            connection.ping()
            if failures:
                log.warning("Redis is back after %d attempts", failures)
            return failures
        except REDIS_LOST as exc:
            failures += 1
            log.warning("Redis unavailable (%s); attempt %d, retrying in %.0f s", exc, failures, wait)
            time.sleep(wait)
            wait = min(wait * 2, max_wait_s)
    return failures
