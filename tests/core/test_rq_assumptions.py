"""What chatlens relies on in rq's public API and in the Redis layout rq writes, checked against the
installed rq on an embedded Redis: an rq upgrade that changes one of them fails here, saying what
chatlens assumed and which code assumed it."""

from __future__ import annotations

import ast
import inspect
import logging
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fakeredis
import pytest
import redis
import rq
from rq import Queue, Retry, SimpleWorker, get_current_job
from rq.cron import CronJob
from rq.job import Job, JobStatus
from rq.utils import utcparse

from chatlens.core import queues as q
from chatlens.core.context import JobContext
from chatlens.core.failed import QUEUE_KEY_PREFIX
from chatlens.core.settings import Settings
from eval.cron import JSONCronJob
from eval.jobs import evaluate_latest_run
from worker.job import ContextJob
from worker.logs import PER_JOB_TEMPLATES
from worker.recovery import RECLAIMS, Heartbeat, Reclaimed, reclaim
from worker.runner import ChatlensWorker, create_worker
from worker.stranded import JOB_PREFIX, sweep_stranded, unplaced_jobs

RQ = f"rq {rq.__version__}"
PROBE_QUEUE = "rq-probe"
WORKER: ChatlensWorker | None = None  # the worker running `probe`


def fake() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def probe(ctx: JobContext) -> dict[str, Any]:
    """A job that reports what its worker looks like from inside a running job."""
    assert WORKER is not None
    running = get_current_job()
    return {
        "context first": ctx is WORKER.context,
        "execution.job is the running job": [e.job is running for e in WORKER.executions.values()],
        "SIGTERM handler is request_stop": signal.getsignal(signal.SIGTERM) == WORKER.request_stop,
        "SIGINT handler is request_stop": signal.getsignal(signal.SIGINT) == WORKER.request_stop,
    }


def noop(ctx: JobContext) -> None:
    """A job that does nothing."""


def probe_worker(connection: fakeredis.FakeRedis, settings: Settings | None = None) -> ChatlensWorker:
    allowed = {q.job_name(probe), q.job_name(noop)}
    return create_worker(settings or Settings(), connection, [PROBE_QUEUE], job_functions=allowed)


@pytest.fixture
def own_signal_handlers() -> Iterator[None]:
    """rq installs its handlers for the life of the process: put pytest's back."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_a_running_job_finds_its_context_its_execution_and_rqs_stop_handler(
    own_signal_handlers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = fake()
    worker = probe_worker(connection)
    monkeypatch.setattr(f"{__name__}.WORKER", worker)
    job = Queue(PROBE_QUEUE, connection=connection, serializer=q.SERIALIZER).enqueue(probe)
    assert worker.work(burst=True, with_scheduler=False)
    result = job.latest_result()
    assert result is not None and result.type == result.Type.SUCCESSFUL, result and result.exc_string
    # ContextJob.func hands the context in (rq runs `job.func(*args, **kwargs)`); Heartbeat.beat reads
    # `execution.job`; ChatlensWorker.request_stop is the one handler of SIGINT and SIGTERM.
    assert result.return_value == {
        "context first": True,
        "execution.job is the running job": [True],
        "SIGTERM handler is request_stop": True,
        "SIGINT handler is request_stop": True,
    }, f"{RQ}: a running job no longer sees its worker as worker/runner.py and worker/job.py assume"


def test_chatlens_overrides_are_still_rqs_own_methods() -> None:
    own = {ContextJob: {"context", "job_functions"}, ChatlensWorker: set()}
    for cls, base in ((ContextJob, Job), (ChatlensWorker, SimpleWorker)):
        for name, ours in vars(cls).items():
            if name.startswith("_"):
                continue  # our helpers; private rq names are test_rq_private's
            theirs = inspect.getattr_static(base, name, None)
            if name in own[cls]:
                assert theirs is None, f"{RQ}'s {base.__name__} now has its own {name!r}, hidden by ours"
                continue
            assert theirs is not None, (
                f"{RQ}'s {base.__name__} has no {name!r}: {cls.__name__}'s overrides nothing"
            )
            assert type(ours) is type(theirs), f"{RQ}: {base.__name__}.{name} is now a {type(theirs)}"
            if inspect.isfunction(ours) and not any(
                p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                for p in inspect.signature(ours).parameters.values()
            ):
                mine, rqs = (
                    list(inspect.signature(ours).parameters),
                    list(inspect.signature(theirs).parameters),
                )
                assert mine == rqs, f"{RQ}: {base.__name__}.{name}{rqs} no longer takes {mine}"
    assert "log_job_description" in inspect.signature(SimpleWorker.__init__).parameters, RQ
    # What ChatlensWorker adds to a worker is its own, not a name rq's worker sets itself.
    ours = {"context", "job_functions", "lost_redis", "stop_requested", "in_work_loop"}
    ours |= {"starting", "announced"}  # the "still loading" marker and the one "ready" line
    plain = SimpleWorker([PROBE_QUEUE], connection=fake(), serializer=q.SERIALIZER, job_class=ContextJob)
    added = set(vars(probe_worker(fake()))) - set(vars(plain))
    assert added == ours, f"{RQ}'s worker now sets {sorted(ours - added)} itself"


@contextmanager
def rq_worker_records() -> Iterator[list[logging.LogRecord]]:
    """Every record of the `rq.worker` logger at INFO and up, as rq emits it (no filter of ours)."""
    logger = logging.getLogger("rq.worker")
    saved = (logger.level, logger.filters[:], logger.propagate)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    logger.filters.clear()
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.filters[:] = saved[1]
        logger.propagate = saved[2]


def _info_lines(jobs: int) -> tuple[int, int]:
    """(per-job template lines, other INFO lines) of a burst worker that runs `jobs` jobs."""
    connection = fake()
    queue = Queue(PROBE_QUEUE, connection=connection, serializer=q.SERIALIZER)
    for _ in range(jobs):
        queue.enqueue(noop)
    with rq_worker_records() as records:
        probe_worker(connection).work(burst=True, with_scheduler=False, logging_level="INFO")
    info = [r for r in records if r.levelno == logging.INFO]
    templated = sum(1 for r in info if r.msg in PER_JOB_TEMPLATES)
    return templated, len(info) - templated


def test_rqs_per_job_log_lines_are_the_templates_worker_logs_demotes(own_signal_handlers: None) -> None:
    source = Path(rq.__file__).parent / "worker"
    literals = {
        node.value
        for path in source.glob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    gone = sorted(PER_JOB_TEMPLATES - literals)
    assert not gone, f"{RQ} no longer logs {gone}: update worker/logs.py PER_JOB_TEMPLATES"
    one_templated, one_other = _info_lines(1)
    three_templated, three_other = _info_lines(3)
    assert one_templated > 0 and three_templated == 3 * one_templated, (one_templated, three_templated)
    # Any INFO line that is not a template comes once per worker, not once per job.
    assert three_other == one_other, f"{RQ} logs a per-job INFO line worker/logs.py does not know"


def _started(queue: Queue, worker: SimpleWorker) -> Job:
    """What a worker does with the next job of `queue` before it runs it."""
    dequeued = Queue.dequeue_any(
        [queue], None, connection=queue.connection, job_class=ContextJob, serializer=q.SERIALIZER
    )
    assert dequeued is not None
    job = dequeued[0]
    worker.prepare_execution(job)
    worker.prepare_job_execution(job)
    return job


def test_reclaim_enqueues_at_the_front_with_meta_and_fails_with_it() -> None:
    connection = fake()
    queue = Queue(q.classify_queue("x"), connection=connection, serializer=q.SERIALIZER, job_class=ContextJob)
    batch = {"batch": {"run": "r", "items": []}, "classifier": "x"}
    first = queue.enqueue(q.CLASSIFY_JOB, kwargs=batch, retry=Retry(max=3))
    waiting = queue.enqueue(q.CLASSIFY_JOB, kwargs=batch)
    dead = SimpleWorker([queue], connection=connection, serializer=q.SERIALIZER, job_class=ContextJob)
    job = _started(queue, dead)
    (execution,) = dead.executions.values()
    # The worker's name comes from rq's execution record; Queue.enqueue_job puts it back at the front.
    assert reclaim(queue, expired_before=time.time() + 3600, max_reclaims=1) == [
        Reclaimed(queue.name, first.id, dead.name, requeued=True)
    ]
    assert queue.job_ids == [first.id, waiting.id]
    assert not connection.exists(execution.key) and len(queue.started_job_registry) == 0
    back = ContextJob.fetch(first.id, connection=connection, serializer=q.SERIALIZER)
    assert (back.get_status(), back.meta[RECLAIMS], back.retries_left) == (JobStatus.QUEUED, 1, 3)
    # Job.save + record_job_failure: failed, with its meta and the reason as its failure.
    job = _started(queue, dead)
    assert job.id == first.id
    (failed,) = reclaim(queue, expired_before=time.time() + 3600, max_reclaims=1)
    assert not failed.requeued and queue.failed_job_registry.get_job_ids() == [first.id]
    gone = ContextJob.fetch(first.id, connection=connection, serializer=q.SERIALIZER)
    assert (gone.get_status(), gone.meta[RECLAIMS]) == (JobStatus.FAILED, 2)
    result = gone.latest_result()
    assert result is not None and (result.exc_string or "").startswith("AbandonedJobError: worker died 2")


def test_the_stranded_sweep_reads_where_rq_keeps_a_queued_job(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)  # rq dequeues from one queue with LMOVE on Redis >= 6.2
    settings = Settings(stranded_grace_s=0)
    queue = Queue(q.classify_queue("x"), connection=connection, serializer=q.SERIALIZER, job_class=ContextJob)
    other = Queue(q.classify_queue("y"), connection=connection, serializer=q.SERIALIZER)
    job = queue.enqueue(q.CLASSIFY_JOB, kwargs={})
    assert job.key == JOB_PREFIX + job.id
    assert unplaced_jobs(connection, settings) == {}
    # A worker of one queue moves the id to the intermediate list (LMOVE): placed.
    taken = Queue.dequeue_any([queue], None, connection=connection, job_class=ContextJob)
    assert taken is not None and queue.job_ids == []
    assert unplaced_jobs(connection, settings) == {}
    # A worker of several queues pops it (LPOP): in no list until it starts, what the sweep looks for.
    connection.lrem(queue.intermediate_queue_key, 1, job.id)
    queue.enqueue_job(job)
    assert Queue.dequeue_any([queue, other], None, connection=connection, job_class=ContextJob) is not None
    ((origin, enqueued_at),) = unplaced_jobs(connection, settings).values()
    stored = ContextJob.fetch(job.id, connection=connection, serializer=q.SERIALIZER)
    assert (origin, utcparse(enqueued_at)) == (queue.name, stored.enqueued_at)
    assert sweep_stranded(connection, settings) == []  # a suspect first
    assert sweep_stranded(connection, settings) == [job.id]
    assert queue.job_ids == [job.id]
    # Once started it is in the started registry: placed.
    SimpleWorker([queue], connection=connection, serializer=q.SERIALIZER).prepare_execution(stored)
    assert unplaced_jobs(connection, settings) == {}


def test_the_heartbeat_keeps_a_running_execution_alive() -> None:
    connection = fake()
    settings = Settings(execution_ttl_s=600)
    worker = probe_worker(connection, settings)
    queue = worker.queues[0]
    queue.enqueue(noop)
    job = _started(queue, worker)
    registry = queue.started_job_registry
    (entry,) = connection.zrange(registry.key, 0, -1)
    connection.zadd(registry.key, {entry: time.time() + 1})  # about to expire
    Heartbeat(worker, settings).beat()
    expires = connection.zscore(registry.key, entry)
    assert expires is not None and expires > time.time() + 500, f"{RQ}: maintain_heartbeats({job.id})"


def test_the_worker_socket_outwaits_rqs_blocking_dequeue() -> None:
    worker = probe_worker(fake())
    timeout = worker.connection.connection_pool.connection_kwargs["socket_timeout"]
    assert timeout > worker.dequeue_timeout, f"{RQ} blocks {worker.dequeue_timeout} s in a dequeue"


def _shape(connection: fakeredis.FakeRedis, job_id: str) -> dict[str, Any]:
    """Each key with its type and content, the job id replaced, hash values and scores left out."""

    def name(raw: bytes) -> str:
        return raw.decode().replace(job_id, "<job>")

    shape: dict[str, Any] = {}
    for key in connection.scan_iter():
        kind = connection.type(key).decode()
        content: Callable[[], Any] = {
            "hash": lambda k=key: sorted(f.decode() for f in connection.hkeys(k)),
            "list": lambda k=key: [name(v) for v in connection.lrange(k, 0, -1)],
            "set": lambda k=key: sorted(name(v) for v in connection.smembers(k)),
            "zset": lambda k=key: sorted(name(v) for v in connection.zrange(k, 0, -1)),
        }.get(kind, lambda: None)
        shape[name(key)] = (kind, content())
    return shape


def test_json_cron_jobs_enqueue_what_rqs_cron_jobs_enqueue() -> None:
    options = {"queue_name": "eval", "func": evaluate_latest_run, "interval": 60, "job_timeout": 3600}
    shapes = []
    for cls in (CronJob, JSONCronJob):
        connection = fake()
        job = cls(**options, name="nightly").enqueue(connection)  # type: ignore[arg-type]
        shapes.append(_shape(connection, job.id))
    assert shapes[1] == shapes[0], (
        f"{RQ}'s CronJob.enqueue changed: eval/cron.py JSONCronJob.enqueue copies it"
    )


def test_the_status_screen_reads_rqs_queue_keys() -> None:
    connection = fake()
    Queue("classify-x", connection=connection).enqueue(q.CLASSIFY_JOB)
    assert Queue.redis_queue_namespace_prefix == QUEUE_KEY_PREFIX
    assert connection.smembers(Queue.redis_queues_keys) == {f"{QUEUE_KEY_PREFIX}classify-x".encode()}
