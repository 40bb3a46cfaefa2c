"""Every use chatlens makes of a private name of rq (pyproject pins `rq>=3.0,<4`): two, each for want of a
public API in rq 3.0. Nothing else in the tree may touch a private rq name (tests/core/test_rq_private.py
scans the tree), and each hook has a test there that fails, naming the hook, if an rq upgrade changes it.

Where rq 3.0 has a public way, chatlens takes it, and tests/core/test_rq_assumptions.py checks the
behaviour it relies on:
- re-enqueueing a job at the front of its queue (reclaim, stranded sweep): `Queue.enqueue_job`, which for
  a job without dependencies or a rate limit (none of chatlens's has either) is exactly `_enqueue_job`;
- writing a job's meta inside a pipeline before `record_job_failure`: `Job.save(pipeline=...)`;
- the job of a running execution: `Execution.job`, the object the worker performs, never fetched;
- knowing that a stop was requested: `ChatlensWorker.request_stop`, rq's one handler of SIGINT/SIGTERM;
- handing a job function its context: the public `Job.func`, instead of overriding `_execute`.
"""

from __future__ import annotations

from rq.cron import CronJob, CronScheduler
from rq.job import Job


def callback_names(job: Job) -> list[str]:
    """The dotted names of the success, failure and stopped callbacks `job` carries (stored in Redis by
    whoever enqueued it), without importing them.

    Why private: a worker must refuse a job that names a callback before anything is imported, and rq
    3.0's only public accessors (`success_callback`, `failure_callback`, `stopped_callback`) import the
    named function in order to return it."""
    names = (job._success_callback_name, job._failure_callback_name, job._stopped_callback_name)
    return [name for name in names if name]


def add_cron_job(scheduler: CronScheduler, job: CronJob) -> None:
    """Schedule `job`, an already built CronJob (here, one that enqueues as JSON), on `scheduler`.

    Why private: rq 3.0's `CronScheduler.register` builds a plain `CronJob` itself, whose `enqueue` uses the
    pickle serializer with no option for another; the scheduler offers no public way to add a CronJob of
    another class, so this appends to the list `register` appends to."""
    scheduler._cron_jobs.append(job)
