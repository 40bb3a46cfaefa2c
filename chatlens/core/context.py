"""`JobContext`: what a job function gets from the worker that runs it, as its first argument.

Settings are built once when the worker starts and handed down here; a job never reads the
environment itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis import Redis

from chatlens.core.replication import ReplicaAck
from chatlens.core.settings import Settings
from chatlens.core.store import RunStore


@dataclass
class JobContext:
    settings: Settings
    connection: Redis
    store: RunStore = field(init=False)

    def __post_init__(self) -> None:
        # A job's results reach the replicas before RQ marks it finished (chatlens/core/replication.py).
        ack = ReplicaAck.from_settings(self.connection, self.settings)
        self.store = RunStore(self.connection, self.settings.result_ttl_s, ack)
