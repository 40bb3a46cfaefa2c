"""`ContextJob`: an RQ job that runs only chatlens's own functions, and hands them the worker's context.

RQ imports whatever dotted name a job carries, JSON serializer or not. This class checks the name
against `chatlens.core.queues.JOB_FUNCTIONS` before anything is imported; a foreign job raises
`ForeignJobError`, which RQ records as the job's failure (in the queue's failed registry, with the
reason), and the worker goes on with the next job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rq.job import Job

from chatlens.core.context import JobContext
from chatlens.core.queues import JOB_FUNCTIONS


class ForeignJobError(Exception):
    """A job names a function that is not one of chatlens's job functions."""


class ContextJob(Job):
    context: JobContext | None = None  # set by the worker before the job is performed

    @property
    def func(self) -> Callable[..., Any] | None:
        name = self.func_name
        if name is not None and name not in JOB_FUNCTIONS:
            raise ForeignJobError(f"refused job {self.id}: {name!r} is not a chatlens job function")
        if self.instance is not None:  # our jobs are plain functions, never methods of a stored object
            raise ForeignJobError(f"refused job {self.id}: it carries an instance to call {name!r} on")
        return super().func

    def _execute(self) -> Any:
        func = self.func
        if func is None or self.context is None:
            raise ForeignJobError(f"job {self.id} has no function or no worker context")
        return func(self.context, *self.args, **self.kwargs)
