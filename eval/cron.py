"""The nightly scheduler: RQ's CronScheduler with the evaluation job, enqueued as JSON.

Schedule: CHATLENS_NIGHTLY_CRON (default "0 2 * * *"; rq reads cron fields in the scheduler's local
time, so run it with TZ=UTC), or CHATLENS_NIGHTLY_INTERVAL_S for a fixed interval. Served by
`chatlens worker --queue eval`.
"""

from __future__ import annotations

import logging
from typing import Any

from redis import Redis
from rq import Queue, cron_job_registry
from rq.cron import CronJob, CronScheduler
from rq.defaults import DEFAULT_CRON_JOB_HISTORY_LIMIT, DEFAULT_CRON_JOB_HISTORY_TTL
from rq.job import Job

from chatlens.core import queues
from chatlens.core.rq_private import add_cron_job
from chatlens.core.settings import Settings
from eval.jobs import evaluate_latest_run

# rq 3.0's CronJob.enqueue builds its Queue with the default (pickle) serializer and offers no option
# for another, while our workers take JSON only. The two classes below are the one place that works
# around it: rq's enqueue with a JSON queue (tests/core/test_rq_assumptions.py checks that it writes
# what rq's own writes), and a register() that schedules such jobs.


class JSONCronJob(CronJob):
    def enqueue(self, connection: Redis) -> Job:
        assert self.func is not None
        queue = Queue(self.queue_name, connection=connection, serializer=queues.SERIALIZER)
        with connection.pipeline() as pipeline:
            job = queue.enqueue(
                self.func, args=self.args, kwargs=self.kwargs, **self.job_options, pipeline=pipeline
            )
            assert job.enqueued_at is not None
            pipeline.zadd(self.job_history_key, {job.id: job.enqueued_at.timestamp()})
            pipeline.zremrangebyrank(self.job_history_key, 0, -(DEFAULT_CRON_JOB_HISTORY_LIMIT + 1))
            pipeline.expire(self.job_history_key, DEFAULT_CRON_JOB_HISTORY_TTL)
            cron_job_registry.add(self.name, pipeline, enqueue_timestamp=job.enqueued_at.timestamp())
            pipeline.execute()
        logging.getLogger(__name__).info("enqueued %s on %s", self.func_name, self.queue_name)
        return job


class JSONCronScheduler(CronScheduler):
    def register(self, func: Any, queue_name: str, **options: Any) -> CronJob:  # type: ignore[override]  # options are CronJob's keywords
        job = JSONCronJob(queue_name=queue_name, func=func, **options)
        add_cron_job(self, job)
        return job


def build_scheduler(settings: Settings, connection: Redis) -> CronScheduler:
    scheduler = JSONCronScheduler(connection=connection)
    schedule: dict[str, Any] = (
        {"interval": settings.nightly_interval_s}
        if settings.nightly_interval_s
        else {"cron": settings.nightly_cron}
    )
    scheduler.register(
        evaluate_latest_run, settings.eval_queue, job_timeout=3600, name="chatlens-nightly-eval", **schedule
    )
    return scheduler
