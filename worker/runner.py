"""Building and running a chatlens worker: `create_worker(settings, ...)` in arq's style.

The worker loads the models of its queues before it takes a job, runs only chatlens's own job
functions, and hands each job its `WorkerContext`.
"""

from __future__ import annotations

import logging
from typing import Any

from redis import Redis
from rq import Queue, SimpleWorker
from rq.executions import Execution
from rq.job import Job

from chatlens.backends.classifier import CLASSIFIERS
from chatlens.backends.summariser import SUMMARISERS
from chatlens.core import queues as q
from chatlens.core.settings import Settings
from worker.context import WorkerContext
from worker.job import ContextJob
from worker.logs import configure_logging


def check_queues(queues: list[str]) -> None:
    """Unknown backend names stop the worker with one line, before it listens to a queue nobody fills."""
    for name in queues:
        if name.startswith(q.CLASSIFY_PREFIX):
            CLASSIFIERS.check(name.removeprefix(q.CLASSIFY_PREFIX))
        elif name.startswith(q.SUMMARISE_PREFIX):
            SUMMARISERS.check(name.removeprefix(q.SUMMARISE_PREFIX))


def preload(context: WorkerContext, queues: list[str], threads: int | None) -> None:
    """Load every model the queues need, now: a missing model (or an MLX queue on a host that cannot
    serve it) stops the worker, not each job."""
    classify = [n.removeprefix(q.CLASSIFY_PREFIX) for n in queues if n.startswith(q.CLASSIFY_PREFIX)]
    summarise = [n.removeprefix(q.SUMMARISE_PREFIX) for n in queues if n.startswith(q.SUMMARISE_PREFIX)]
    if threads and (classify or summarise):
        import torch  # only a model worker has torch installed; an eval-only worker needs none

        torch.set_num_threads(threads)
    for name in classify:
        context.classifier(name)
    for backend in summarise:
        context.summariser(backend)


class ChatlensWorker(SimpleWorker):
    """SimpleWorker runs jobs in this process, so the preloaded models serve every job. RQ's default
    Worker forks a work horse per job: the model would be copied into each fork and torch's OpenMP
    thread pool does not survive fork reliably. One process per worker, scaled by adding processes."""

    job_class = ContextJob

    log_result_lifespan = False  # per-job log lines: see worker/logs.py

    def __init__(self, *args: Any, context: WorkerContext, **kwargs: Any) -> None:
        kwargs.setdefault("log_job_description", False)  # a job's description holds message text
        super().__init__(*args, **kwargs)
        self.context = context

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        if isinstance(job, ContextJob):
            job.context = self.context
        return super().perform_job(job, queue, execution)


def create_worker(
    settings: Settings, connection: Redis, queues: list[str], name: str | None = None,
    threads: int | None = None,
) -> ChatlensWorker:  # fmt: skip
    check_queues(queues)
    context = WorkerContext(settings, connection)
    if settings.metrics_port:  # before preload, so /metrics is up while the models load
        context.metrics.serve(settings.metrics_port)
    preload(context, queues, threads or settings.threads)
    return ChatlensWorker(
        [Queue(n, connection=connection, serializer=q.SERIALIZER, job_class=ContextJob) for n in queues],
        connection=connection,
        serializer=q.SERIALIZER,
        job_class=ContextJob,
        name=name,
        worker_ttl=settings.worker_ttl_s,
        maintenance_interval=settings.maintenance_interval_s,
        context=context,
    )


def run_worker(
    settings: Settings,
    connection: Redis,
    queues: list[str],
    burst: bool = False,
    threads: int | None = None,
    name: str | None = None,
    logging_level: str = "INFO",
    with_scheduler: bool = True,
) -> bool:
    configure_logging(logging_level, settings.log_format, settings.redis_url)  # worker/logs.py
    worker = create_worker(settings, connection, queues, name, threads)
    logging.getLogger("rq.worker").setLevel(logging_level)
    # The scheduler moves retried jobs back onto their queue once their backoff has passed. It takes its
    # lock with a Lua script, which the embedded fakeredis cannot run: the demo goes without it.
    return worker.work(burst=burst, with_scheduler=with_scheduler, logging_level=logging_level)
