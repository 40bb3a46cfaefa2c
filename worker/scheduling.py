"""Putting retried jobs back on their queue once their backoff has passed, from a thread of the worker.

A job that fails with retries left waits out its backoff in its queue's `ScheduledJobRegistry`; something
must move it back when the time comes. rq's `work(with_scheduler=True)` forks a scheduler process for
that after the worker has loaded its models (the child is a copy of it), and nothing tells that child
when its parent dies: after `kill -9` of a worker it lived on, with PPID 1, holding rq's scheduler locks.
chatlens does not start it. Each worker runs `Scheduling`, a thread of its own process (it dies with the
worker, whatever the signal), which does the one thing chatlens needs of rq's scheduler: every
`PASS_S`, for each of the worker's queues whose lease it holds, enqueue the due jobs of the queue's
`ScheduledJobRegistry` (public rq API). The lease is a Redis key per queue (keys.SCHEDULER_LOCK) that
its holder renews each pass and that expires `LEASE_S` after its holder stops: another worker serving
the queue takes it over within seconds. One holder per queue, whatever the number of hosts.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue
from rq.job import Job
from rq.utils import current_timestamp

from chatlens.core import keys

log = logging.getLogger("chatlens.scheduling")

PASS_S = 1.0
LEASE_S = 5.0

# Take the lease if nobody holds it, renew it if we do; 1 when ours.
_TAKE_OR_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return 1
end
if not holder then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
    return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def lease_key(queue: str) -> str:
    return f"{keys.SCHEDULER_LOCK}:{queue}"


def enqueue_due(queue: Queue) -> list[str]:
    """Move the jobs of `queue`'s scheduled registry whose time has come onto the queue (at the front
    where the job asks for it), as rq's scheduler does; the ids moved."""
    registry = queue.scheduled_job_registry
    ids = registry.get_jobs_to_schedule(current_timestamp())
    if not ids:
        return []
    jobs = Job.fetch_many(ids, connection=queue.connection, serializer=queue.serializer)
    moved: list[str] = []
    with queue.connection.pipeline() as pipe:
        pipe.multi()
        for job_id, job in zip(ids, jobs, strict=True):
            registry.remove(job_id, pipeline=pipe)
            if job is not None:  # expired meanwhile: only its registry entry is left to remove
                queue.enqueue_job(job, pipeline=pipe, at_front=job.should_enqueue_at_front())
                moved.append(job_id)
        pipe.execute()
    return moved


class Scheduling(threading.Thread):
    def __init__(self, connection: Redis, queues: list[Queue], holder: str) -> None:
        super().__init__(name=f"scheduling-{holder}", daemon=True)
        self.connection, self.queues, self.holder = connection, queues, holder
        self.stopped = threading.Event()
        self._take = connection.register_script(_TAKE_OR_RENEW)
        self._release = connection.register_script(_RELEASE)
        self.held: set[str] = set()

    def run(self) -> None:
        while not self.stopped.wait(PASS_S):
            try:
                self.one_pass()
            except RedisError:  # Redis is away: the work loop reconnects; the lease lapses meanwhile
                self.held.clear()

    def one_pass(self) -> None:
        for queue in self.queues:
            mine = bool(self._take(keys=[lease_key(queue.name)], args=[self.holder, int(LEASE_S * 1000)]))
            if mine and queue.name not in self.held:
                log.info("scheduling retried jobs of %s (lease %s)", queue.name, lease_key(queue.name))
            if mine:
                self.held.add(queue.name)
                enqueue_due(queue)
            else:
                self.held.discard(queue.name)

    def stop(self) -> None:
        """End the thread and hand the leases back at once (a warm stop; a death lets them lapse)."""
        self.stopped.set()
        if self.is_alive():
            self.join(timeout=PASS_S * 5)
        with contextlib.suppress(RedisError):
            for name in self.held:
                self._release(keys=[lease_key(name)], args=[self.holder])
        self.held.clear()
