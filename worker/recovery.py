"""Getting a dead worker's batch running again, and riding out a Redis restart.

RQ's SimpleWorker gives a running job's execution a time-to-live of the job timeout + 60 s and never
refreshes it while the job runs, so a killed worker's batch sat in the started registry for up to
11 minutes. Here each worker keeps its running execution alive with a short TTL from a heartbeat thread,
and every worker, every `reclaim_interval_s` (one at a time, under a Redis lock, and at once when it
starts), re-enqueues the jobs whose execution has gone silent. A reclaimed job goes to the front of its
queue. A worker's death is not its batch's fault, so a reclaim spends none of the job's retries; it is
counted in `job.meta["reclaims"]`, and a batch whose worker died more than `max_reclaims` times (a batch
that keeps killing its worker) ends in the failed registry. Results are written per message id (HSET),
so running a batch again is safe: at-least-once execution, exactly-once results.
The same pass, less often, puts back jobs stranded outside every queue and registry (worker/stranded.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import JobStatus
from rq.job_lifecycle import record_job_failure
from rq.utils import as_text

from chatlens.core.settings import Settings
from worker.stranded import SWEEP_LOCK, sweep_stranded

if TYPE_CHECKING:
    from rq.worker import BaseWorker

log = logging.getLogger("chatlens.recovery")

RECLAIM_LOCK = "chatlens:lock:reclaim"
RECLAIMS = "reclaims"  # job.meta key: how many times a worker died while running this job
REDIS_LOST = (RedisConnectionError, RedisTimeoutError)


@dataclass(frozen=True)
class Reclaimed:
    queue: str
    job_id: str
    worker: str
    requeued: bool  # False: its worker died too often, moved to the failed registry


def _execution_worker(execution: Execution) -> str:
    """The name of the worker running `execution`, or "" once its record has expired."""
    try:
        execution.refresh()
    except ValueError:  # rq's "not found in Redis"
        return ""
    return execution.worker_name


def reclaim(
    queue: Queue,
    *,
    expired_before: float | None = None,
    workers: Collection[str] = (),
    max_reclaims: int = Settings.model_fields["max_reclaims"].default,
) -> list[Reclaimed]:
    """Re-enqueue the started jobs of `queue` whose execution expired before `expired_before`
    (a Unix time), or that belong to one of `workers` (a worker that knows it lost them).

    An expired execution means its worker died: that counts as one of the job's reclaims, and the
    (max_reclaims + 1)th fails it. A worker that lost Redis hands its batch back uncounted."""
    connection = queue.connection
    registry = queue.started_job_registry
    found: list[Reclaimed] = []
    entries: list[tuple[bytes, float]] = connection.zrange(registry.key, 0, -1, withscores=True)  # type: ignore[assignment]
    for raw, score in entries:
        entry = as_text(raw)
        execution = Execution.from_composite_key(entry, connection)  # "<job id>:<execution id>"
        job_id = execution.job_id
        worker = _execution_worker(execution)
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
            # One MULTI for the whole: Queue.enqueue_job starts one itself on a pipeline that has none yet,
            # and cannot once a command is queued in it.
            pipe.multi()
            pipe.delete(execution.key)
            # A finished or failed job's leftover entry is not an abandoned batch.
            if job.get_status(refresh=False) != JobStatus.STARTED:
                pipe.execute()
                continue
            died = int(job.meta.get(RECLAIMS, 0)) + (1 if expired and worker not in workers else 0)
            job.meta[RECLAIMS] = died
            requeued = died <= max_reclaims
            if requeued:
                queue.enqueue_job(job, pipeline=pipe, at_front=True)  # saves meta with the job
            else:
                job.save(pipeline=pipe)  # for its meta: the failed registry saves the job without it
                reason = (
                    f"AbandonedJobError: worker died {died} times while running this batch"
                    f" (last: {worker or '?'})"
                )
                record_job_failure(job, reason, pipe)
            pipe.execute()
        found.append(Reclaimed(queue.name, job_id, worker, requeued))
        log.warning(
            "reclaimed job %s of dead worker %s on %s: %s",
            job_id,
            worker or "?",
            queue.name,
            f"re-enqueued at the front (worker deaths: {died} of {max_reclaims} allowed)"
            if requeued
            else f"its worker died {died} times, failed as poison",
        )
    return found


def reclaim_all(
    queues: list[Queue], interval_s: float, max_reclaims: int, locked: bool = True
) -> list[Reclaimed]:
    """One reclaim pass over `queues`, by at most one worker per `interval_s` (`locked=False`: now,
    whoever else is at it; each job is claimed by one ZREM, so two passes never reclaim it twice)."""
    if not queues:
        return []
    lock_ms = int(interval_s * 1000)
    if locked and not queues[0].connection.set(RECLAIM_LOCK, "1", nx=True, px=lock_ms):
        return []
    cutoff = time.time()
    return [r for q in queues for r in reclaim(q, expired_before=cutoff, max_reclaims=max_reclaims)]


class Heartbeat(threading.Thread):
    """Keeps this worker's running execution alive, and runs the reclaim passes and stranded-job sweeps,
    on its own clock: the work loop is busy inside a batch and RQ's SimpleWorker has no monitor to do it."""

    def __init__(self, worker: BaseWorker, settings: Settings) -> None:
        super().__init__(name=f"heartbeat-{worker.name}", daemon=True)
        self.worker = worker
        self.settings = settings
        self.stopped = threading.Event()
        self._last_error_log = 0.0

    def run(self) -> None:
        settings = self.settings
        next_reclaim = next_sweep = 0.0
        started = False
        wait = 0.0
        while not self.stopped.wait(wait):
            wait = settings.heartbeat_interval_s
            try:
                self.beat()
                now = time.monotonic()
                if now >= next_reclaim:
                    # A fresh worker (often the replacement of a dead one) reclaims at once, lock or not.
                    reclaim_all(
                        self.worker.queues, settings.reclaim_interval_s, settings.max_reclaims, locked=started
                    )
                    next_reclaim, started = now + settings.reclaim_interval_s, True
                if now >= next_sweep:
                    next_sweep = now + settings.stranded_sweep_interval_s
                    self.sweep()
            except RedisError as exc:  # Redis is away: the work loop reconnects; try again next beat
                self._log_at_most_every(f"heartbeat: Redis unavailable ({exc}); retrying")

    def sweep(self) -> None:
        settings, connection = self.settings, self.worker.connection
        lock_ms = int(settings.stranded_sweep_interval_s * 1000)
        if connection.set(SWEEP_LOCK, "1", nx=True, px=lock_ms):
            sweep_stranded(connection, settings)

    def beat(self) -> None:
        for execution in list(self.worker.executions.values()):
            # The job object the worker is performing: rq sets it when it creates the execution.
            self.worker.maintain_heartbeats(execution.job, execution)

    def _log_at_most_every(self, line: str, seconds: float = 10.0) -> None:
        if time.monotonic() - self._last_error_log >= seconds:
            self._last_error_log = time.monotonic()
            log.warning(line)


def wait_for_redis(connection: Redis, max_wait_s: float, stop: threading.Event | None = None) -> int:
    """Block until Redis answers a PING (or `stop` is set, which ends a backoff at once), backing off
    1 s, 2 s, 4 s ... up to `max_wait_s`, one log line per attempt. Returns the number of failed attempts."""
    stop = stop or threading.Event()
    wait, failures = 1.0, 0
    while not stop.is_set():
        try:
            connection.ping()
            if failures:
                log.warning("Redis is back after %d attempts", failures)
            return failures
        except REDIS_LOST as exc:
            failures += 1
            log.warning("Redis unavailable (%s); attempt %d, retrying in %.0f s", exc, failures, wait)
            stop.wait(wait)
            wait = min(wait * 2, max_wait_s)
    return failures
