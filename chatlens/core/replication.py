"""Replica acknowledgement: a write counts as written once the replicas have it (Redis WAIT).

Redis replicates asynchronously, so a primary that dies can take the last writes it acknowledged with
it; the replica the sentinels promote never had them. The producer counts a batch as enqueued, and a
worker lets RQ mark a job finished, only after `WAIT numreplicas timeout` says enough replicas hold the
write. If they do not in time, the write is sent again (message ids are content hashes and results are
written per message id, so a second copy changes nothing); after `redis_wait_attempts` sends it gives up:
`ReplicationTimeout`, a one-line exit 3 for the producer, a failed try (and RQ's retry) for a job.

WAIT counts the replicas that hold *this client's* last write, so it must go on the very connection that
ran the MULTI/EXEC: `AckPipeline` sends it there, right after EXEC. How many replicas: the setting
`redis_wait_replicas`, or by default every replica the primary reports (INFO replication
`connected_slaves`, asked again every ACK_REFRESH_S and after a failed WAIT): none on a lone Redis, where
nothing is waited for and nothing is sent. WAIT does not make Redis strongly consistent (a replica that
acknowledged may still lose the write in a double failure); it bounds what one failover can lose to
writes nobody was told had succeeded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from redis import Redis
from redis.client import Pipeline
from redis.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from chatlens.core.errors import ServiceUnavailable
from chatlens.core.settings import Settings

ACK_REFRESH_S = 5.0  # how long the replica count read from INFO is trusted
RESEND_PAUSE_S = 0.5  # between sends of a write whose WAIT fell short: a failover may be under way
T = TypeVar("T")


class ReplicationTimeout(ServiceUnavailable):
    """The replicas did not acknowledge a write after every send."""


class AckPipeline(Pipeline):
    """A MULTI/EXEC pipeline that sends `WAIT replicas timeout_ms` on its own connection right after
    EXEC; `acked` is the number of replicas that acknowledged (None: the connection broke after EXEC, so
    nobody knows: the caller sends again)."""

    replicas = 0
    timeout_ms = 0
    acked: int | None = None

    def _execute_transaction(self, connection: Connection, commands: Any, raise_on_error: bool) -> list[Any]:
        # redis-py's own (private) step, extended: the one place that holds the connection the EXEC used.
        results: list[Any] = super()._execute_transaction(connection, commands, raise_on_error)
        self.acked = None
        try:
            connection.send_command("WAIT", self.replicas, self.timeout_ms)
            # The socket must outwait the WAIT itself.
            self.acked = int(connection.read_response(timeout=self.timeout_ms / 1000 + 5))
        except (RedisConnectionError, RedisTimeoutError):
            # Not raised: redis-py would retry the whole transaction on this connection's new socket,
            # counters included; the caller sends again only what the primary does not hold.
            connection.disconnect()
        return results


class ReplicaAck:
    """How a process waits for its writes to reach the replicas (see the module docstring)."""

    def __init__(
        self,
        connection: Redis,
        replicas: int | None = None,
        timeout_ms: int = 2_000,
        attempts: int = 5,
    ) -> None:
        self.connection, self.replicas = connection, replicas
        self.timeout_ms, self.attempts = timeout_ms, attempts
        self._wanted = 0
        self._checked_at: float | None = None
        self.resends = 0  # writes sent again because their WAIT fell short (for reports and tests)

    @classmethod
    def from_settings(cls, connection: Redis, settings: Settings) -> ReplicaAck:
        wait = (settings.redis_wait_replicas, settings.redis_wait_timeout_ms, settings.redis_wait_attempts)
        return cls(connection, *wait)

    def wanted(self) -> int:
        """Replicas a write must reach: the setting, or the primary's connected replicas."""
        if self.replicas is not None:
            return self.replicas
        now = time.monotonic()
        if self._checked_at is None or now - self._checked_at > ACK_REFRESH_S:
            try:
                info = self.connection.info("replication")
                self._wanted = int(info.get("connected_slaves", 0))
            except (RedisError, ValueError, TypeError):
                # The embedded fakeredis answers no INFO replication: a lone server, nothing to wait for.
                # A lost connection is the caller's write's to meet and retry, not this question's.
                self._wanted = 0
            self._checked_at = now
        return self._wanted

    def pipeline(self) -> Pipeline:
        """A MULTI/EXEC pipeline that waits for the replicas when there are any to wait for."""
        wanted = self.wanted()
        if wanted == 0:
            return self.connection.pipeline()
        pipe = AckPipeline(self.connection.connection_pool, self.connection.response_callbacks, True, None)
        pipe.replicas, pipe.timeout_ms = wanted, self.timeout_ms
        return pipe

    def confirmed(self, pipe: Pipeline) -> bool:
        """Whether the write `pipe` executed reached the replicas it waited for."""
        if not isinstance(pipe, AckPipeline):
            return True
        if pipe.acked is not None and pipe.acked >= pipe.replicas:
            return True
        self._checked_at = None  # a replica may have gone, or the primary changed: ask again
        return False

    def write(self, fill: Callable[[Pipeline], T], what: str) -> T:
        """`fill` a pipeline and execute it until the replicas acknowledge it; `fill` runs again for each
        send (it may re-read what is there), and its value is returned. ReplicationTimeout after
        `attempts` sends."""
        for attempt in range(1, self.attempts + 1):
            with self.pipeline() as pipe:
                value = fill(pipe)
                pipe.execute()
                if self.confirmed(pipe):
                    return value
                acked = getattr(pipe, "acked", None)
                wanted = getattr(pipe, "replicas", self.replicas)
            if attempt < self.attempts:
                self.resends += 1
                time.sleep(RESEND_PAUSE_S)
        raise ReplicationTimeout(
            f"{what}: {acked if acked is not None else 'no'} of {wanted} replica(s) acknowledged it within "
            f"{self.timeout_ms} ms, {self.attempts} times; check the replicas (INFO replication) or lower "
            "CHATLENS_REDIS_WAIT_REPLICAS / raise CHATLENS_REDIS_WAIT_TIMEOUT_MS"
        )
