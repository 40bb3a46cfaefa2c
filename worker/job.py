"""`ContextJob`: an RQ job that runs only chatlens's own functions, and hands them the worker's context.

RQ imports whatever dotted name a job carries, JSON serializer or not: its function, and the names of
its success/failure/stopped callbacks. This class checks the function against
`chatlens.core.queues.JOB_FUNCTIONS` before anything is imported, and never imports a callback
(chatlens sets none). A foreign job raises `ForeignJobError`, which RQ records as the job's failure (in
the queue's failed registry, with the reason); the worker does not retry it and goes on with the next job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rq.job import Job

from chatlens.core.context import JobContext
from chatlens.core.queues import JOB_FUNCTIONS

_CALLBACKS = ("_success_callback_name", "_failure_callback_name", "_stopped_callback_name")


class ForeignJobError(Exception):
    """A job names a function that is not one of chatlens's job functions."""


def foreign_reason(job: Job) -> str | None:
    """Why `job` is not one of chatlens's own jobs, or None when it is."""
    name = job.func_name
    if name not in JOB_FUNCTIONS:
        return f"refused job {job.id}: {name!r} is not a chatlens job function"
    if job.instance is not None:  # our jobs are plain functions, never methods of a stored object
        return f"refused job {job.id}: it carries an instance to call {name!r} on"
    callbacks = [getattr(job, a) for a in _CALLBACKS if getattr(job, a, None)]
    if callbacks:
        return f"refused job {job.id}: it carries callbacks {callbacks!r}; chatlens jobs have none"
    return None


class ContextJob(Job):
    context: JobContext | None = None  # set by the worker before the job is performed

    @property
    def func(self) -> Callable[..., Any] | None:
        reason = foreign_reason(self)
        if reason is not None:
            raise ForeignJobError(reason)
        return super().func

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

    def _execute(self) -> Any:
        func = self.func
        if func is None or self.context is None:
            raise ForeignJobError(f"job {self.id} has no function or no worker context")
        return func(self.context, *self.args, **self.kwargs)
