"""Crash recovery, Redis restarts and graceful shutdown, with real worker processes on a real redis-server.

The worker processes serve the slow toy classifier (tests/fixtures/slow_classifier.py, 4 s a batch), so a
test can kill, stop or cut off a worker in the middle of a batch.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from rq import Queue, Retry, SimpleWorker
from rq.job import JobStatus

from chatlens.cli.job_functions import JOB_FUNCTIONS
from chatlens.core import keys
from chatlens.core import queues as q
from chatlens.core.settings import Settings
from tests.fixtures import slow_classifier
from tests.fixtures.slow_classifier import QUEUE, held_by, produce_slow_batches
from tests.helpers import kill_group, subprocess_env, wait_until
from tests.redis_harness import durable_server
from worker.dead_letters import failed_jobs, requeue
from worker.job import ContextJob
from worker.recovery import RECLAIMS, reclaim
from worker.runner import create_worker
from worker.scheduling import Scheduling, lease_key
from worker.stranded import sweep_stranded

pytestmark = pytest.mark.slow

FAST_RECOVERY = {  # so a test waits seconds, not the production 20 s + 5 s
    "CHATLENS_EXECUTION_TTL_S": "10",
    "CHATLENS_HEARTBEAT_INTERVAL_S": "1",
    "CHATLENS_RECLAIM_INTERVAL_S": "1",
}


@pytest.fixture(autouse=True)
def slow_registered() -> Iterator[None]:
    slow_classifier.register()
    yield


def start_worker(redis_url: str, name: str, log: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fixtures.slow_classifier", "--queue", QUEUE, "--name", name],
        env=subprocess_env(CHATLENS_REDIS_URL=redis_url, CHATLENS_CLASSIFIERS="slow", **FAST_RECOVERY, **env),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: a test can kill it, or find what it left
    )


def test_a_killed_workers_batch_is_started_again_by_another_worker(redis_url: str, tmp_path: Path) -> None:
    produce_slow_batches(redis_url, tmp_path, "kill", batches=1)
    connection = redis.Redis.from_url(redis_url)
    first = start_worker(redis_url, "first", tmp_path / "first.log")
    second = None
    try:
        wait_until(lambda: held_by(connection, "first"), 60, "the first worker to start the batch")
        (job_id,) = held_by(connection, "first")
        os.killpg(first.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        first.wait(timeout=30)
        second = start_worker(redis_url, "second", tmp_path / "second.log")
        wait_until(lambda: held_by(connection, "second") == [job_id], 60, "the second worker to take it over")
        recovery_s = time.monotonic() - killed_at
        wait_until(lambda: connection.hlen(keys.results("kill", "slow")) == 2, 60, "the batch's results")
    finally:
        for proc in (first, second):
            if proc is not None:
                kill_group(proc)
    # 10 s execution TTL + 1 s reclaim pass, plus the second worker's start: far under the 60 s target.
    assert recovery_s < 40, recovery_s
    job = ContextJob.fetch(job_id, connection=connection, serializer=q.SERIALIZER)
    assert job.get_status() == JobStatus.FINISHED
    assert job.retries_left == len(Settings().retry_intervals_s)  # a worker's death spends no retry...
    assert job.meta[RECLAIMS] == 1  # ...it is counted on its own
    assert "reclaimed job " + job_id in (tmp_path / "second.log").read_text()


def test_a_job_whose_worker_keeps_dying_ends_failed_once_its_reclaims_are_spent(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE, connection=connection, serializer=q.SERIALIZER, job_class=ContextJob)
    job = queue.enqueue(
        q.CLASSIFY_JOB, kwargs={"batch": {"run": "r", "items": []}, "classifier": "slow"}, retry=Retry(max=3)
    )
    dead = SimpleWorker([queue], connection=connection, serializer=q.SERIALIZER, job_class=ContextJob)
    dead.register_birth()
    for requeued in (True, True, False):  # max_reclaims=2: the third death makes it poison
        dequeued = queue.dequeue_any(
            [queue], None, connection=connection, job_class=ContextJob, serializer=q.SERIALIZER
        )
        assert dequeued is not None and dequeued[0].id == job.id
        dead.prepare_execution(dequeued[0])
        dead.prepare_job_execution(dequeued[0])
        # Not yet expired: left alone.
        assert reclaim(queue, expired_before=time.time(), max_reclaims=2) == []
        (found,) = reclaim(queue, expired_before=time.time() + 3600, max_reclaims=2)
        assert (found.job_id, found.worker, found.requeued) == (job.id, dead.name, requeued)
        if requeued:  # back at the front, its retries untouched
            assert queue.job_ids == [job.id]
            assert ContextJob.fetch(job.id, connection=connection, serializer=q.SERIALIZER).retries_left == 3
    assert job.get_status() == JobStatus.FAILED
    assert queue.failed_job_registry.get_job_ids() == [job.id]
    assert len(queue.started_job_registry) == 0
    (listed,) = failed_jobs(connection, Settings(), JOB_FUNCTIONS)
    assert listed.reason.startswith("AbandonedJobError: worker died 3 times while running this batch")
    assert ContextJob.fetch(job.id, connection=connection, serializer=q.SERIALIZER).meta[RECLAIMS] == 3
    # `chatlens requeue` gives it a fresh start: its worker deaths no longer count.
    (moved,), _ = requeue(connection, Settings(), JOB_FUNCTIONS, [job.id])
    assert moved.job_id == job.id and queue.job_ids == [job.id]
    assert RECLAIMS not in ContextJob.fetch(job.id, connection=connection, serializer=q.SERIALIZER).meta


def test_a_worker_that_lost_redis_hands_its_batch_back_without_counting_a_death(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE, connection=connection, serializer=q.SERIALIZER, job_class=ContextJob)
    job = queue.enqueue(q.CLASSIFY_JOB, kwargs={"batch": {"run": "r", "items": []}, "classifier": "slow"})
    lost = SimpleWorker([queue], connection=connection, serializer=q.SERIALIZER, job_class=ContextJob)
    dequeued = queue.dequeue_any(
        [queue], None, connection=connection, job_class=ContextJob, serializer=q.SERIALIZER
    )
    assert dequeued is not None
    lost.prepare_execution(dequeued[0])
    lost.prepare_job_execution(dequeued[0])
    (found,) = reclaim(queue, workers={lost.name}, max_reclaims=0)
    assert found.requeued and queue.job_ids == [job.id]
    assert ContextJob.fetch(job.id, connection=connection, serializer=q.SERIALIZER).meta[RECLAIMS] == 0


def test_a_job_stranded_outside_every_queue_is_put_back_by_the_sweep_and_runs(
    redis_url: str, tmp_path: Path
) -> None:
    produce_slow_batches(redis_url, tmp_path, "stranded", batches=2)
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE, connection=connection, serializer=q.SERIALIZER, job_class=ContextJob)
    stranded, waiting = queue.job_ids
    # What a worker's BLPOP does before Redis goes away: the id leaves the list, nothing else changes.
    assert connection.lrem(queue.key, 1, stranded) == 1
    assert ContextJob.fetch(stranded, connection=connection, serializer=q.SERIALIZER).get_status() == "queued"
    settings = Settings(classifiers=["slow"], summarise=False, stranded_grace_s=0)
    # First sweep: a suspect only (it could be between a dequeue and its start); the second puts it back.
    assert sweep_stranded(connection, settings) == []
    assert queue.job_ids == [waiting]
    assert sweep_stranded(connection, settings) == [stranded]
    assert queue.job_ids == [stranded, waiting]  # at the front
    assert sweep_stranded(connection, settings) == []  # nothing twice
    create_worker(settings, connection, [QUEUE]).work(burst=True)
    assert connection.hlen(keys.results("stranded", "slow")) == 4
    assert (
        ContextJob.fetch(stranded, connection=connection, serializer=q.SERIALIZER).get_status() == "finished"
    )


def test_the_sweep_waits_out_its_grace_period(redis_url: str, tmp_path: Path) -> None:
    produce_slow_batches(redis_url, tmp_path, "grace", batches=1)
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE, connection=connection, serializer=q.SERIALIZER, job_class=ContextJob)
    (job_id,) = queue.job_ids
    connection.lrem(queue.key, 1, job_id)
    settings = Settings(classifiers=["slow"], summarise=False, stranded_grace_s=3600)
    assert sweep_stranded(connection, settings) == []
    assert sweep_stranded(connection, settings) == []  # seen twice, but not an hour apart
    assert queue.job_ids == []


def test_sigterm_lets_the_batch_finish_and_the_worker_exit_0(redis_url: str, tmp_path: Path) -> None:
    produce_slow_batches(redis_url, tmp_path, "term", batches=2)
    connection = redis.Redis.from_url(redis_url)
    proc = start_worker(redis_url, "term", tmp_path / "term.log")
    try:
        wait_until(lambda: held_by(connection, "term"), 60, "the worker to start a batch")
        (job_id,) = held_by(connection, "term")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=slow_classifier.SECONDS_PER_BATCH + 30) == 0
    finally:
        kill_group(proc)
    assert connection.hlen(keys.results("term", "slow")) == 2  # the batch it held, and only that one
    assert ContextJob.fetch(job_id, connection=connection, serializer=q.SERIALIZER).get_status() == "finished"
    assert Queue(QUEUE, connection=connection).count == 1
    assert "warm shut down requested" in (tmp_path / "term.log").read_text()


def test_a_worker_rides_out_a_redis_restart_and_loses_no_batch(tmp_path: Path) -> None:
    server = durable_server(tmp_path)
    url = server.url
    proc = None
    try:
        produce_slow_batches(url, tmp_path, "restart", batches=3)
        connection = redis.Redis.from_url(url)
        proc = start_worker(url, "survivor", tmp_path / "survivor.log", CHATLENS_REDIS_RETRY_MAX_S="2")
        wait_until(lambda: held_by(connection, "survivor"), 60, "the worker to start a batch")
        server.stop()  # SIGTERM: redis-server flushes its AOF and exits
        time.sleep(slow_classifier.SECONDS_PER_BATCH + 2)  # the batch ends while Redis is away
        assert proc.poll() is None, (tmp_path / "survivor.log").read_text()[-3000:]
        server.start()  # the same port and AOF
        connection = redis.Redis.from_url(url)
        wait_until(lambda: connection.hlen(keys.results("restart", "slow")) == 6, 90, "every batch's results")
        assert proc.poll() is None
        queue = Queue(QUEUE, connection=connection, serializer=q.SERIALIZER)
        assert len(queue.failed_job_registry) == 0
    finally:
        if proc is not None:
            kill_group(proc)
        server.stop()
    log = (tmp_path / "survivor.log").read_text()
    assert "Redis unavailable" in log and "lost Redis; reconnecting" in log, log[-3000:]
    # The same process waited for Redis and went on: its batch ended while Redis was still away (2 s
    # before the restart), so the first PING after it noticed the loss failed and the wait logged its end.
    after_loss = log[log.index("lost Redis; reconnecting") :]
    assert re.search(r"Redis is back after [1-9]\d* attempts", after_loss), log[-3000:]


def test_sigterm_ends_a_workers_wait_for_redis_at_once_and_it_exits_0(tmp_path: Path) -> None:
    server = durable_server(tmp_path)
    url = server.url_for(0)
    log = tmp_path / "waiting.log"
    proc = None
    try:
        produce_slow_batches(url, tmp_path, "away", batches=1)
        connection = redis.Redis.from_url(url)
        proc = start_worker(url, "waiting", log, CHATLENS_REDIS_RETRY_MAX_S="30")
        wait_until(lambda: held_by(connection, "waiting"), 60, "the worker to start a batch")
        server.stop()  # SIGTERM: redis-server exits, and stays away
        wait_until(lambda: "attempt 4, retrying in 8 s" in log.read_text(), 60, "a long wait for Redis")
        before = len(log.read_text())
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
        # Out of its 8 s backoff at once: rq's own handler would have written to the Redis that is away.
        assert time.monotonic() - asked < 8
    finally:
        if proc is not None:
            kill_group(proc)
        server.close()
    assert "Traceback" not in log.read_text()[before:], log.read_text()[before:]


def group_processes(pgid: int) -> list[str]:
    """The live processes of process group `pgid` (a worker started in its own session, and anything it
    forked): "pid command" each, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            found.append(f"{entry.name} {stat.split(' ', 2)[1]}")
    return found


def test_a_killed_worker_leaves_no_process_and_another_takes_the_scheduling_lease(
    redis_url: str, tmp_path: Path
) -> None:
    connection = redis.Redis.from_url(redis_url)
    lease = lease_key(QUEUE)
    first = start_worker(redis_url, "first", tmp_path / "first.log")
    second = None
    try:
        wait_until(lambda: connection.get(lease) == b"first", 60, "the first worker to hold the lease")
        second = start_worker(redis_url, "second", tmp_path / "second.log")
        wait_until(lambda: connection.exists("rq:worker:second"), 60, "the second worker to serve")
        assert connection.get(lease) == b"first"  # one holder at a time
        os.kill(first.pid, signal.SIGKILL)  # the worker alone, not its process group
        first.wait(timeout=30)
        time.sleep(10)
        assert group_processes(first.pid) == []  # nothing of it lives on (rq's forked scheduler did)
        assert connection.get(lease) == b"second", (tmp_path / "second.log").read_text()[-2000:]
        assert not connection.keys("rq:scheduler-lock:*")  # rq's own scheduler never ran
    finally:
        for proc in (first, second):
            if proc is not None:
                kill_group(proc)
    assert "scheduling retried jobs of classify-slow" in (tmp_path / "second.log").read_text()


def test_a_retried_job_is_put_back_on_its_queue_once_its_backoff_has_passed(redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    queue = Queue(QUEUE, connection=connection, serializer=q.SERIALIZER)
    due = queue.enqueue_in(timedelta(seconds=-1), q.CLASSIFY_JOB, batch={"run": "r", "items": []})
    later = queue.enqueue_in(timedelta(hours=1), q.CLASSIFY_JOB, batch={"run": "r", "items": []})
    assert queue.job_ids == []
    holders = [Scheduling(connection, [queue], name) for name in ("a", "b")]
    holders[0].one_pass()
    holders[1].one_pass()  # the lease is a's: b moves nothing
    assert queue.job_ids == [due.id]
    assert queue.scheduled_job_registry.get_job_ids() == [later.id]
    assert holders[0].held == {QUEUE} and holders[1].held == set()
    holders[0].stop()  # a warm stop hands the lease back at once
    holders[1].one_pass()
    assert holders[1].held == {QUEUE}


def test_an_idle_worker_says_when_it_loads_and_serves_and_exits_within_5_s_of_sigterm(
    redis_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "idle.log"
    proc = start_worker(redis_url, "idle", log)
    try:
        wait_until(lambda: "ready: serving classify-slow" in log.read_text(), 60, "the worker to serve")
        text = log.read_text()
        assert text.index("loading models for classify-slow …") < text.index("ready: serving classify-slow")
        time.sleep(1)  # into rq's blocking dequeue
        asked = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        took = time.monotonic() - asked
    finally:
        kill_group(proc)
    assert took < 5, took
    last = log.read_text().rstrip().splitlines()[-1]
    assert last.endswith("stopped: worker idle (asked to stop)"), log.read_text()[-2000:]
