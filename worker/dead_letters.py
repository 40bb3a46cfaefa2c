"""Dead letters: the jobs of chatlens's queues that ended in RQ's failed registry, listed and put back.

A batch lands here once its retries are spent (it kept raising or timing out) or its worker died on it
more than `max_reclaims` times (worker/recovery.py), and so does a refused foreign job. `chatlens failed`
lists them; `chatlens requeue` puts chatlens's own jobs back on their queue with RQ's
`FailedJobRegistry.requeue`, their count of worker deaths reset. A foreign job is never requeued: it
names a function no worker may run.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import asdict, dataclass

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry

from chatlens.core import queues as q
from chatlens.core.errors import ChatlensError
from chatlens.core.settings import Settings
from worker.job import ContextJob, foreign_reason
from worker.recovery import RECLAIMS


@dataclass(frozen=True)
class FailedJob:
    queue: str
    job_id: str
    run: str | None
    what: str
    reason: str
    failed_at: str | None
    foreign: bool

    def as_dict(self) -> dict:
        return asdict(self)


def chatlens_queues(connection: Redis, settings: Settings) -> list[Queue]:
    """Every queue RQ knows that chatlens fills: classify-*, summarise-* and the eval queue."""
    known = {qu.name for qu in Queue.all(connection=connection)}
    names = sorted(n for n in known if q.is_chatlens_queue(n, settings))
    return [Queue(n, connection=connection, serializer=q.SERIALIZER, job_class=ContextJob) for n in names]


def _describe(job: Job) -> tuple[str | None, str]:
    """(run, what it was) read from the job's JSON arguments, never by importing anything."""
    kwargs = job.kwargs if isinstance(job.kwargs, dict) else {}
    run = q.job_run(job.func_name, kwargs, job.meta)
    if job.func_name == q.CLASSIFY_JOB and isinstance(kwargs.get("batch"), dict):
        return run, f"classify {len(kwargs['batch'].get('items', []))} messages ({kwargs.get('classifier')})"
    if job.func_name == q.SUMMARISE_JOB and isinstance(kwargs.get("conversation"), dict):
        conv = kwargs["conversation"]
        return run, f"summarise conversation {conv.get('conversation_id')} ({kwargs.get('backend')})"
    if job.func_name == q.SUMMARISE_MANY_JOB and isinstance(kwargs.get("conversations"), list):
        return run, f"summarise {len(kwargs['conversations'])} conversations ({kwargs.get('backend')})"
    if job.func_name == q.EVALUATE_JOB:
        return None, "evaluate the latest run"
    return None, f"foreign: {job.func_name}"


_EXCEPTION_LINE = re.compile(
    r"^(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt)\w*(?::.*)?)$"
)


def _reason(job: Job) -> tuple[str, str | None]:
    result = job.latest_result()  # rq 3 keeps a failure's traceback in its Result, never in the job hash
    text = (result.exc_string if result is not None else None) or ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    # The exception's own line ("ValueError: ..."), not what some exceptions print after it.
    headers = [m.group(1) for line in lines if (m := _EXCEPTION_LINE.match(line))]
    reason = headers[-1] if headers else (lines[-1].strip() if lines else "unknown")
    when = result.created_at.isoformat(timespec="seconds") if result is not None else None
    if when is None and job.ended_at is not None:
        when = job.ended_at.isoformat(timespec="seconds")
    return reason, when


def _safe_fetch(registry: FailedJobRegistry, job_id: str) -> Job | None:
    try:
        return registry.job_class.fetch(
            job_id, connection=registry.connection, serializer=registry.serializer
        )
    except Exception:  # expired, or data that is not chatlens's JSON: nothing to list
        return None


def failed_jobs(
    connection: Redis, settings: Settings, job_functions: Collection[str], run: str | None = None
) -> list[FailedJob]:
    """The failed jobs of chatlens's queues; a job whose function is not in `job_functions` (the job
    functions chatlens's workers run) is listed as foreign."""
    found: list[FailedJob] = []
    for queue in chatlens_queues(connection, settings):
        registry = queue.failed_job_registry
        for job_id in registry.get_job_ids():
            job = _safe_fetch(registry, job_id)
            if job is None:
                continue
            foreign = foreign_reason(job, job_functions) is not None
            job_run, what = _describe(job) if not foreign else (None, f"foreign: {job.func_name}")
            if run is not None and job_run != run:
                continue
            reason, when = _reason(job)
            found.append(FailedJob(queue.name, job.id, job_run, what, reason, when, foreign))
    found.sort(key=lambda f: f.failed_at or "")
    return found


def requeue(
    connection: Redis,
    settings: Settings,
    job_functions: Collection[str],
    job_ids: list[str] | None,
    run: str | None = None,
    queue: str | None = None,
) -> tuple[list[FailedJob], list[FailedJob]]:
    """Put failed chatlens jobs back on their queue: the given ids, or (job_ids None) every one that
    matches `run` and `queue`. A foreign or unknown id is refused with one line, before anything moves;
    with no ids, foreign jobs are left where they are. Returns (requeued, foreign left behind)."""
    listed = [
        f for f in failed_jobs(connection, settings, job_functions, run) if queue is None or f.queue == queue
    ]
    chosen = listed if job_ids is None else []
    if job_ids is not None:
        by_id = {f.job_id: f for f in listed}
        for job_id in job_ids:
            if job_id not in by_id:
                raise ChatlensError(f"job {job_id}: not a failed chatlens job (see `chatlens failed`)")
            chosen.append(by_id[job_id])
    refused = [f for f in chosen if f.foreign]
    if refused and job_ids is not None:
        raise ChatlensError(
            f"job {refused[0].job_id}: a refused foreign job ({refused[0].what}); not requeued"
        )
    moved = [f for f in chosen if not f.foreign]
    for item in moved:
        registry = FailedJobRegistry(
            item.queue, connection=connection, serializer=q.SERIALIZER, job_class=ContextJob
        )
        job = _safe_fetch(registry, item.job_id)
        if job is not None:
            if job.func_name in q.TIMED_JOBS:
                job.timeout = settings.job_timeout_s  # today's setting, not the one it was enqueued with
                job.save(include_meta=False)
            if job.meta.pop(RECLAIMS, None) is not None:
                # A fresh start: its worker deaths so far no longer count against it. (save_meta: rq's
                # save() leaves the stored meta as it was when the meta is empty.)
                job.save_meta()
        registry.requeue(item.job_id)
    return moved, refused
