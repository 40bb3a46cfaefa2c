"""`ContextJob`: an RQ job that runs only chatlens's own functions, and hands them the worker's context.

RQ imports whatever dotted name a job carries, JSON serializer or not: its function, and the names of
its success/failure/stopped callbacks. This class checks the function against the job functions its
worker was built with (`ChatlensWorker.job_functions`, made from the functions themselves: see
worker/runner.py) before anything is imported, and never imports a callback (chatlens sets none). A
foreign job raises `ForeignJobError`, which RQ records as the job's failure (in the queue's failed
registry, with the reason); the worker does not retry it and goes on with the next job.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection
from typing import Any

from rq.job import Job

from chatlens.core.context import JobContext
from chatlens.core.rq_private import callback_names


class ForeignJobError(Exception):
    """A job names a function that is not one of chatlens's job functions."""


def foreign_reason(job: Job, job_functions: Collection[str]) -> str | None:
    """Why `job` is not one of the chatlens jobs named in `job_functions`, or None when it is."""
    name = job.func_name
    if name not in job_functions:
        return f"refused job {job.id}: {name!r} is not a chatlens job function"
    if job.instance is not None:  # our jobs are plain functions, never methods of a stored object
        return f"refused job {job.id}: it carries an instance to call {name!r} on"
    callbacks = callback_names(job)
    if callbacks:
        return f"refused job {job.id}: it carries callbacks {callbacks!r}; chatlens jobs have none"
    return None


class ContextJob(Job):
    # Set by the worker before the job is performed; a job fetched anywhere else runs nothing.
    context: JobContext | None = None
    job_functions: frozenset[str] = frozenset()

    @property
    def func(self) -> Callable[..., Any] | None:
        """The job's function with the worker's context as its first argument: RQ runs a job as
        `job.func(*job.args, **job.kwargs)`."""
        reason = foreign_reason(self, self.job_functions)
        if reason is not None:
            raise ForeignJobError(reason)
        func = super().func
        if func is None or self.context is None:
            raise ForeignJobError(f"job {self.id} has no function or no worker context")
        return functools.partial(func, self.context)

    # RQ calls these on success, failure and stop, importing the stored name: never for a chatlens job.
    @property
    def success_callback(self) -> None:
        return None

    @property
    def failure_callback(self) -> None:
        return None

    @property
    def stopped_callback(self) -> None:
        return None
