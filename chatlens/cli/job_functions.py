"""The job functions chatlens's workers run: the worker role's own and the nightly evaluation, which a
worker serving the eval queue runs. Assembled here, where the roles meet, from the functions themselves,
so the dependency is an import the layer contract sees (worker/ may not import eval/). Anything else a
job names is refused (worker/job.py)."""

from __future__ import annotations

from chatlens.core.queues import job_name
from eval.jobs import evaluate_latest_run
from worker.runner import WORKER_JOBS

JOB_FUNCTIONS: frozenset[str] = WORKER_JOBS | {job_name(evaluate_latest_run)}
