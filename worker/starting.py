"""The "a worker is starting" marker: a worker loading its models is not yet registered with rq.

rq registers a worker when its work loop starts, after chatlens has loaded the models (seconds to
minutes). Meanwhile `produce` would find no live worker on the queues and warn that none runs. So a
worker sets keys.worker_starting(<host>:<pid>) to the queues it will serve, with a short TTL refreshed by
a thread while it loads, and deletes it once it serves (or it expires after a crash).
"""

from __future__ import annotations

import contextlib
import threading

from redis import Redis
from redis.exceptions import RedisError

from chatlens.core import keys
from chatlens.core.store import process_name

# A load that never ends (a worker built and never run) stops refreshing the marker after this long.
MAX_LOADING_S = 15 * 60


class Starting(threading.Thread):
    def __init__(self, connection: Redis, queues: list[str]) -> None:
        super().__init__(name="starting-marker", daemon=True)
        self.connection = connection
        self.key = keys.worker_starting(process_name())
        self.value = ",".join(queues)
        self.finished = threading.Event()

    def run(self) -> None:
        refresh = keys.WORKER_STARTING_TTL_S / 3
        waited = 0.0
        while waited < MAX_LOADING_S:
            with contextlib.suppress(RedisError):  # a marker is a courtesy: the load goes on without Redis
                self.connection.set(self.key, self.value, ex=keys.WORKER_STARTING_TTL_S)
            if self.finished.wait(refresh):
                break
            waited += refresh
        self._remove_marker()

    def done(self) -> None:
        """The worker serves (or gave up): the marker goes now, not when it expires."""
        self.finished.set()
        if self.is_alive():
            self.join(timeout=5)
        else:
            self._remove_marker()

    def _remove_marker(self) -> None:
        with contextlib.suppress(RedisError):
            self.connection.delete(self.key)
