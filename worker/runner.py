"""Building and running a chatlens worker: `create_worker(settings, ...)` in arq's style.

The worker loads the models of its queues before it takes a job, runs only the job functions it was
built with, and hands each job its `WorkerContext`.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from redis import Redis
from rq import Queue, SimpleWorker
from rq.exceptions import StopRequested
from rq.executions import Execution
from rq.job import Job

from chatlens.backends.classifier import CLASSIFIERS
from chatlens.backends.summariser import SUMMARISERS
from chatlens.core import queues as q
from chatlens.core.errors import ChatlensError
from chatlens.core.settings import Settings
from worker import jobs
from worker.context import WorkerContext
from worker.job import ContextJob, foreign_reason
from worker.logs import configure_logging
from worker.recovery import REDIS_LOST, Heartbeat, reclaim, wait_for_redis

log = logging.getLogger("chatlens.worker")

# The worker role's own job functions, named as RQ names them. `chatlens worker` adds the nightly
# evaluation's (chatlens/cli/job_functions.py), where the roles are assembled: worker/ may not import eval/.
WORKER_JOBS: frozenset[str] = frozenset(
    q.job_name(f) for f in (jobs.classify_batch, jobs.summarise_conversation, jobs.summarise_conversations)
)


def check_queues(settings: Settings, queues: list[str], job_functions: Collection[str]) -> None:
    """Unknown backend names stop the worker with one line, before it listens to a queue nobody fills;
    so does the eval queue on a worker that may not run the evaluation (it would refuse every job)."""
    for name in queues:
        if name.startswith(q.CLASSIFY_PREFIX):
            CLASSIFIERS.check(name.removeprefix(q.CLASSIFY_PREFIX))
        elif name.startswith(q.SUMMARISE_PREFIX):
            SUMMARISERS.check(name.removeprefix(q.SUMMARISE_PREFIX))
        elif name == settings.eval_queue and q.EVALUATE_JOB not in job_functions:
            raise ChatlensError(
                f"queue {name!r} holds the nightly evaluation ({q.EVALUATE_JOB}), which this worker is not"
                f" built to run: serve it with `chatlens worker --queue {name}`"
            )


def preload(context: WorkerContext, queues: list[str], threads: int | None) -> None:
    """Load every model the queues need, now: a missing model (or an MLX queue on a host that cannot
    serve it) stops the worker, not each job."""
    classify = [n.removeprefix(q.CLASSIFY_PREFIX) for n in queues if n.startswith(q.CLASSIFY_PREFIX)]
    summarise = [n.removeprefix(q.SUMMARISE_PREFIX) for n in queues if n.startswith(q.SUMMARISE_PREFIX)]
    if threads and (classify or summarise):
        # Only a torch worker has torch (imported by name: the ONNX worker's import contract); an ONNX
        # worker's sessions take CHATLENS_THREADS when they are opened.
        with contextlib.suppress(ImportError):
            importlib.import_module("torch").set_num_threads(threads)
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

    def __init__(
        self, *args: Any, context: WorkerContext, job_functions: Collection[str], **kwargs: Any
    ) -> None:
        kwargs.setdefault("log_job_description", False)  # a job's description holds message text
        super().__init__(*args, **kwargs)
        self.context = context
        self.job_functions = frozenset(job_functions)
        self.lost_redis = False  # set when a Redis call failed for want of a connection
        self.stop_requested = threading.Event()  # SIGTERM or SIGINT (or rq's shutdown command) came
        self.in_work_loop = False

    def perform_job(self, job: Job, queue: Queue, execution: Execution) -> bool:
        if isinstance(job, ContextJob):
            job.context = self.context
            job.job_functions = self.job_functions
        reason = foreign_reason(job, self.job_functions)
        if reason is not None:
            # Its own Retry must not bring it back: a refused job fails once, for good.
            job.retries_left = None
            log.error("%s (queue %s): moved to the failed registry, not retried", reason, queue.name)
        return super().perform_job(job, queue, execution)

    # Recovery (worker/recovery.py): a short execution TTL kept alive by a heartbeat thread.
    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        return self.context.settings.execution_ttl_s

    def clean_registries(self) -> None:
        # Before RQ's own cleanup, which would put an abandoned job behind its retry backoff, in the care
        # of a scheduler process that may have died with the job's worker.
        max_reclaims = self.context.settings.max_reclaims
        for queue in self.queues:
            reclaim(queue, expired_before=time.time(), max_reclaims=max_reclaims)
        super().clean_registries()

    def work(self, *args: Any, **kwargs: Any) -> bool:
        beat = Heartbeat(self, self.context.settings)
        beat.start()
        self.in_work_loop = True
        try:
            return super().work(*args, **kwargs)
        finally:
            self.in_work_loop = False
            beat.stopped.set()

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """rq's handler of SIGINT and SIGTERM (its shutdown command sends SIGINT). Noted here, where
        `run_worker` can read it: rq keeps its own flag private. Outside rq's work loop (waiting for Redis
        after losing it) nothing is running, and rq's handler would write to the Redis that is away: the
        note alone ends the wait."""
        self.stop_requested.set()
        if self.in_work_loop:
            super().request_stop(signum, frame)

    # RQ's work loop quits on any error it meets outside dequeueing; these note when it was Redis.
    def execute_job(self, job: Job, queue: Queue) -> None:
        with self._noting_redis_loss():
            super().execute_job(job, queue)

    def run_maintenance_tasks(self) -> None:
        with self._noting_redis_loss():
            super().run_maintenance_tasks()

    def check_for_suspension(self, burst: bool) -> None:
        with self._noting_redis_loss():
            super().check_for_suspension(burst)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        with self._noting_redis_loss():
            super().heartbeat(timeout, pipeline)

    @contextmanager
    def _noting_redis_loss(self) -> Iterator[None]:
        try:
            yield
        except REDIS_LOST:
            self.lost_redis = True
            raise


def create_worker(
    settings: Settings, connection: Redis, queues: list[str], name: str | None = None,
    threads: int | None = None, job_functions: Collection[str] = WORKER_JOBS,
) -> ChatlensWorker:  # fmt: skip
    """A worker that serves `queues` and runs only `job_functions` (by default the worker role's own)."""
    check_queues(settings, queues, job_functions)
    if threads:  # --threads: torch's threads and the ONNX sessions' alike
        settings = settings.model_copy(update={"threads": threads})
    connection = _with_blocking_timeout(connection, settings.worker_ttl_s + 10)
    context = WorkerContext(settings, connection)
    if settings.metrics_port:  # before preload, so /metrics is up while the models load
        context.metrics.serve(settings.metrics_port)
    preload(context, queues, threads or settings.threads)
    return _build(context, queues, name, job_functions)


def _with_blocking_timeout(connection: Redis, seconds: float) -> Redis:
    """A client whose sockets wait `seconds`, longer than RQ's blocking dequeue (worker_ttl - 15 s).
    redis-py 8 gives every socket 5 s, and RQ raises that only in the pool's settings, for connections made
    afterwards: the one that answered connect()'s PING kept 5 s, so an idle worker's BLMOVE timed out every
    5 s and RQ backed off (up to a minute) between tries while jobs waited."""
    pool = connection.connection_pool
    timeout = pool.connection_kwargs.get("socket_timeout")  # None: redis-py's default, 5 s
    if timeout is not None and timeout >= seconds:
        return connection
    kwargs = {**pool.connection_kwargs, "socket_timeout": seconds}
    fresh = type(pool)(connection_class=pool.connection_class, max_connections=pool.max_connections, **kwargs)
    return type(connection)(connection_pool=fresh)


def _build(
    context: WorkerContext, queues: list[str], name: str | None, job_functions: Collection[str]
) -> ChatlensWorker:
    settings, connection = context.settings, context.connection
    return ChatlensWorker(
        [Queue(n, connection=connection, serializer=q.SERIALIZER, job_class=ContextJob) for n in queues],
        connection=connection,
        serializer=q.SERIALIZER,
        job_class=ContextJob,
        name=name,
        worker_ttl=settings.worker_ttl_s,
        maintenance_interval=settings.maintenance_interval_s,
        context=context,
        job_functions=job_functions,
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
    job_functions: Collection[str] = WORKER_JOBS,
) -> bool:
    configure_logging(logging_level, settings.log_format, settings.redis_url)  # worker/logs.py
    worker = create_worker(settings, connection, queues, name, threads, job_functions)
    logging.getLogger("rq.worker").setLevel(logging_level)
    worked = False
    while True:
        # The scheduler moves retried jobs back onto their queue once their backoff has passed. It takes
        # its lock with a Lua script, which the embedded fakeredis cannot run: the demo goes without it.
        try:
            worked = (
                worker.work(burst=burst, with_scheduler=with_scheduler, logging_level=logging_level) or worked
            )
        except REDIS_LOST:  # teardown after a lost connection fails the same way
            worker.lost_redis = True
        except StopRequested:  # rq's handler raises it when idle: here, in the teardown after Redis went away
            return worked
        if not worker.lost_redis or worker.stop_requested.is_set():
            return worked
        fresh = _reconnect(worker, queues, name)
        if fresh is None:  # asked to stop while Redis was away: no batch is running, nothing to finish
            return worked
        worker = fresh


def _reconnect(lost: ChatlensWorker, queues: list[str], name: str | None) -> ChatlensWorker | None:
    """RQ's work() gives up on a Redis error met outside its dequeue loop ("found an unhandled exception,
    quitting") and offers no hook to go on: wait for Redis, hand back what the lost worker held, and
    build a fresh worker, with the models already loaded, for a fresh work loop. None once a stop is
    requested."""
    log.warning("worker %s lost Redis; reconnecting", lost.name)
    while not lost.stop_requested.is_set():
        wait_for_redis(lost.connection, lost.context.settings.redis_retry_max_s, lost.stop_requested)
        if lost.stop_requested.is_set():
            break
        try:
            lost.register_death()  # frees its name for the fresh loop
            lost.unsubscribe()  # its pubsub thread would otherwise outlive it
            for queue in lost.queues:
                # The batch it was running when Redis went away: started again now, not after its TTL
                # (not counted as a worker death). One it had only dequeued is the stranded sweep's.
                reclaim(queue, workers={lost.name})
            fresh = _build(lost.context, queues, name, lost.job_functions)
        except REDIS_LOST:
            continue  # gone again before we were done: wait again
        # A stop requested while it handed its batch back is still a stop: the fresh loop never starts.
        return None if lost.stop_requested.is_set() else fresh
    return None
