"""Starting an RQ worker that has its classifiers loaded before it takes a job."""

from __future__ import annotations

import logging

from redis import Redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer

from chatlens import keys
from chatlens.settings import Settings

CLASSIFY_PREFIX = keys.classify_queue("")
SUMMARISE_PREFIX = keys.summarise_queue("")


def default_queues(settings: Settings) -> list[str]:
    queues = [keys.classify_queue(c) for c in settings.classifiers]
    if settings.summarise:
        queues.append(keys.summarise_queue(settings.summary_backend))
    return queues


def preload(queues: list[str], settings: Settings, connection: Redis, threads: int | None) -> None:
    """Load every model the queues need, now: a missing model (or an MLX queue on a host that cannot
    serve it) stops the worker, not each job."""
    classify = [q.removeprefix(CLASSIFY_PREFIX) for q in queues if q.startswith(CLASSIFY_PREFIX)]
    summarise = [q.removeprefix(SUMMARISE_PREFIX) for q in queues if q.startswith(SUMMARISE_PREFIX)]
    if not classify and not summarise:
        return  # e.g. the eval queue: no torch needed
    import torch

    if threads:
        torch.set_num_threads(threads)
    from worker.loaded import get_classifier, get_summariser

    for key in classify:
        get_classifier(key, settings, connection)
    for backend in summarise:
        get_summariser(backend, settings, connection)


def build_worker(
    queues: list[str], settings: Settings, connection: Redis, name: str | None = None
) -> SimpleWorker:
    # SimpleWorker runs jobs in this process, so the preloaded models serve every job. RQ's default
    # Worker forks a work horse per job: the model would be copied into each fork and torch's OpenMP
    # thread pool does not survive fork reliably. One process per worker, scaled by adding processes.
    return SimpleWorker(
        [Queue(q, connection=connection, serializer=JSONSerializer) for q in queues],
        connection=connection,
        serializer=JSONSerializer,
        name=name,
        worker_ttl=settings.worker_ttl_s,
        maintenance_interval=settings.maintenance_interval_s,
    )


def run_worker(
    queues: list[str],
    settings: Settings,
    connection: Redis,
    burst: bool = False,
    threads: int | None = None,
    name: str | None = None,
    logging_level: str = "INFO",
    with_scheduler: bool = True,
) -> bool:
    preload(queues, settings, connection, threads or settings.threads)
    worker = build_worker(queues, settings, connection, name)
    logging.getLogger("rq.worker").setLevel(logging_level)
    # The scheduler moves retried jobs back onto their queue once their backoff has passed. It takes its
    # lock with a Lua script, which the embedded fakeredis cannot run: the demo goes without it.
    return worker.work(burst=burst, with_scheduler=with_scheduler, logging_level=logging_level)
