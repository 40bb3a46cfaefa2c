"""Running RQ's CronScheduler with the nightly configuration, enqueueing JSON jobs."""

from __future__ import annotations

import rq.cron
from redis import Redis
from rq import Queue
from rq.serializers import JSONSerializer

NIGHTLY_CONFIG = "eval.nightly"


class JSONQueue(Queue):
    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("serializer", JSONSerializer)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


def build_scheduler(connection: Redis, config: str = NIGHTLY_CONFIG) -> rq.cron.CronScheduler:
    # rq's CronJob.enqueue builds a Queue with the default (pickle) serializer and has no option for
    # another. Our workers accept JSON only, so this process's cron jobs use a JSON queue.
    rq.cron.Queue = JSONQueue  # type: ignore[misc]
    scheduler = rq.cron.CronScheduler(connection=connection)
    scheduler.load_config_from_file(config)
    return scheduler
