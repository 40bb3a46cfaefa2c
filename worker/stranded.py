"""Stranded jobs: status `queued`, yet in no queue list, no intermediate list and no started registry,
so no worker will ever take them. Found and put back by a periodic sweep.

How one gets there: a worker serving several queues dequeues with BLPOP, which takes the job id off its
queue; the job is only recorded again (status `started`, started registry) when the worker prepares it.
If Redis goes away between the two (a restart), the worker never learns which job it held and the id is
in no list at all. A Redis that loses its last writes (kill -9 with `appendfsync everysec`) can leave the
same state. The reclaim pass cannot see such a job: it is in no registry.

RQ keeps no index of queued jobs besides the queue lists, and chatlens's producer adds none, so the sweep
SCANs `rq:job:*` (COUNT 1000 a call, one pipelined HMGET per batch of keys: a few dozen round trips for
ten thousand jobs), every `stranded_sweep_interval_s` under a Redis lock, by one worker. A job that looks
stranded may only be between BLPOP and its start (milliseconds): it becomes a suspect, kept in a Redis
hash, and is re-enqueued (at the front) only if a later sweep, at least `stranded_grace_s` on, still finds
it stranded with the same `enqueued_at`. Should the worker that took it still be alive after all, the
batch runs twice, which is safe: results are written per message id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from redis import Redis
from redis.typing import EncodableT, FieldT
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.utils import as_text

from chatlens.core import queues as q
from chatlens.core.settings import Settings
from worker.job import ContextJob

log = logging.getLogger("chatlens.recovery")

SWEEP_LOCK = "chatlens:lock:stranded-sweep"
SUSPECTS = "chatlens:stranded:suspects"  # job id -> "<enqueued_at>|<first seen, Unix time>"
# A job's hash is "rq:job:<id>" with the fields status, origin and enqueued_at as rq 3.0 writes them
# (tests/core/test_rq_assumptions.py checks the layout against rq's own Job).
JOB_PREFIX = Job.redis_job_namespace_prefix
SCAN_COUNT = 1000


def _job_keys(connection: Redis) -> Iterator[list[str]]:
    """The job hashes' keys in batches of up to SCAN_COUNT (not `rq:job:<id>:dependents` and the like)."""
    batch: list[str] = []
    for raw in connection.scan_iter(match=f"{JOB_PREFIX}*", count=SCAN_COUNT):
        key = as_text(raw)
        if ":" not in key[len(JOB_PREFIX) :]:
            batch.append(key)
            if len(batch) >= SCAN_COUNT:
                yield batch
                batch = []
    if batch:
        yield batch


def unplaced_jobs(connection: Redis, settings: Settings) -> dict[str, tuple[str, str]]:
    """{job id: (queue, enqueued_at)} of chatlens jobs whose status is queued but which are in no queue
    list, intermediate list or started registry right now (some may be between a dequeue and their start)."""
    queued: dict[str, tuple[str, str]] = {}
    for keys in _job_keys(connection):
        with connection.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key, "status", "origin", "enqueued_at")
            rows = pipe.execute()
        for key, (status, origin, enqueued_at) in zip(keys, rows, strict=True):
            if status is None or origin is None or as_text(status) != JobStatus.QUEUED.value:
                continue
            if q.is_chatlens_queue(as_text(origin), settings):
                queued[key[len(JOB_PREFIX) :]] = (as_text(origin), as_text(enqueued_at or b""))
    # Read after the statuses, in the order a job moves (queue list, intermediate list, started registry):
    # a job that moves on while we read is seen in its next place, or at worst becomes a mere suspect.
    placed: set[str] = set()
    for origin in sorted({origin for origin, _ in queued.values()}):
        queue = Queue(origin, connection=connection)
        placed.update(as_text(j) for j in connection.lrange(queue.key, 0, -1))
        placed.update(as_text(j) for j in connection.lrange(queue.intermediate_queue_key, 0, -1))
        started: list[bytes] = connection.zrange(queue.started_job_registry.key, 0, -1)  # type: ignore[assignment]
        placed.update(as_text(e).split(":", 1)[0] for e in started)
    return {job_id: where for job_id, where in queued.items() if job_id not in placed}


def sweep_stranded(connection: Redis, settings: Settings) -> list[str]:
    """One sweep: re-enqueue, at the front of their queue, the jobs a previous sweep at least
    `stranded_grace_s` ago already found stranded; remember the others as suspects. Returns the job
    ids put back."""
    now = time.time()
    unplaced = unplaced_jobs(connection, settings)
    previous = {as_text(k): as_text(v) for k, v in connection.hgetall(SUSPECTS).items()}
    suspects: dict[FieldT, EncodableT] = {}
    requeued: list[str] = []
    for job_id, (origin, enqueued_at) in unplaced.items():
        seen_enqueued, _, seen_at = previous.get(job_id, "").rpartition("|")
        same = job_id in previous and seen_enqueued == enqueued_at
        if same and now - float(seen_at) >= settings.stranded_grace_s:
            if _requeue(connection, job_id, origin, enqueued_at):
                requeued.append(job_id)
            continue
        suspects[job_id] = f"{enqueued_at}|{seen_at if same else now}"
    with connection.pipeline() as pipe:
        pipe.delete(SUSPECTS)
        if suspects:
            pipe.hset(SUSPECTS, mapping=suspects)
            pipe.expire(SUSPECTS, int(settings.stranded_sweep_interval_s * 10) + 3600)
        pipe.execute()
    if requeued:
        log.warning(
            "stranded-job sweep: re-enqueued %d job(s) left queued in no queue or registry: %s",
            len(requeued),
            ", ".join(requeued),
        )
    return requeued


def _requeue(connection: Redis, job_id: str, origin: str, enqueued_at: str) -> bool:
    queue = Queue(origin, connection=connection, serializer=q.SERIALIZER, job_class=ContextJob)
    try:
        job = queue.job_class.fetch(job_id, connection=connection, serializer=queue.serializer)
    except NoSuchJobError:
        return False
    # Still queued, and not enqueued again meanwhile by anyone else.
    stored = connection.hget(job.key, "enqueued_at")
    if job.get_status(refresh=False) != JobStatus.QUEUED or as_text(stored or b"") != enqueued_at:
        return False
    queue.enqueue_job(job, at_front=True)
    return True
