"""A primary, its replicas and three sentinels on loopback ports: `SentinelGroup`, on the one launcher
(`chatlens.bench.redis_server.RedisServer`), for the tests and `scripts/fault_drill.py --sentinel`.

A sentinel is a `RedisServer` whose command is `redis-server FILE.conf --sentinel`: the file is written
into its data directory on its first start only, since a sentinel rewrites it with what it learns (the
current primary, the epoch) and a restarted one must remember that. The down-after and failover
timeouts are short by default, so that a failover takes seconds, not the minutes of Redis's defaults.
With `tls` every node and sentinel speaks TLS only, to its clients and to each other (`tls-replication`),
showing `tls_client`'s certificate when it connects; the group's URL is then `rediss+sentinel://`.

    with SentinelGroup() as group:        # started: the replica in sync, every sentinel sees the others
        url = group.url                   # redis+sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/chatlens
        old = group.kill_primary()        # kill -9
        group.wait_for_failover(old.port) # seconds until a sentinel names another primary
        group.revive(old)                 # back as a replica of the new primary
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import redis

from chatlens.bench.redis_server import HOST, RedisServer, ServerTls
from chatlens.core.errors import ServiceUnavailable

SERVICE = "chatlens"


class RedisSentinel(RedisServer):
    """`redis-server sentinel.conf --sentinel`, monitoring `primary_port` as `service` (quorum 2)."""

    def __init__(
        self,
        *,
        data_dir: Path,
        service: str,
        primary_port: int,
        primary_password: str | None = None,
        down_after_ms: int = 1_000,
        failover_timeout_ms: int = 5_000,
        tls: ServerTls | None = None,
        tls_client: TlsClient | None = None,
    ) -> None:
        super().__init__(data_dir=data_dir, tls=tls)
        self.tls_client = tls_client
        self.service, self.primary_port, self.primary_password = service, primary_port, primary_password
        self.down_after_ms, self.failover_timeout_ms = down_after_ms, failover_timeout_ms

    def _command(self) -> list[str]:
        conf = self.data_dir / "sentinel.conf"
        if not conf.exists():
            lines = [f"port {self.port}"]
            if self.tls is not None:  # TLS only, and TLS to the primary and replicas (tls-replication)
                lines = [
                    "port 0",
                    f"tls-port {self.port}",
                    f"tls-cert-file {self.tls.cert_file}",
                    f"tls-key-file {self.tls.key_file}",
                    f"tls-ca-cert-file {self.tls.ca_file}",
                    f"tls-auth-clients {'yes' if self.tls.auth_clients else 'no'}",
                    "tls-replication yes",
                ]
                if self.tls_client is not None:
                    lines += [
                        f"tls-client-cert-file {self.tls_client.cert_file}",
                        f"tls-client-key-file {self.tls_client.key_file}",
                    ]
            lines += [
                f"bind {HOST}",
                f"dir {self.data_dir}",
                f"sentinel monitor {self.service} {HOST} {self.primary_port} 2",
                f"sentinel down-after-milliseconds {self.service} {self.down_after_ms}",
                f"sentinel failover-timeout {self.service} {self.failover_timeout_ms}",
                f"sentinel parallel-syncs {self.service} 1",
            ]
            if self.primary_password is not None:
                lines.append(f"sentinel auth-pass {self.service} {self.primary_password}")
            conf.write_text("\n".join(lines) + "\n")
        return [str(conf), "--sentinel"]

    def ssl(self) -> dict[str, Any]:
        return _ssl(self.tls, self.tls_client)

    def primary_address(self) -> tuple[str, int] | None:
        with redis.Redis(HOST, self.port, socket_timeout=1, socket_connect_timeout=1, **self.ssl()) as client:
            address: Any = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        return (address[0].decode(), int(address[1])) if address else None


@dataclass(frozen=True)
class TlsClient:
    """The certificate a node or sentinel shows when it connects to another (and a test client)."""

    cert_file: Path
    key_file: Path


class SentinelGroup:
    """A primary, `replicas` replicas and `sentinels` sentinels (each with a data directory under
    `data_dir`), started on entry and stopped on exit."""

    def __init__(
        self,
        data_dir: Path,
        *,
        service: str = SERVICE,
        replicas: int = 1,
        sentinels: int = 3,
        password: str | None = None,
        aof: bool = True,
        down_after_ms: int = 1_000,
        failover_timeout_ms: int = 5_000,
        ready_timeout_s: float = 30.0,
        tls: ServerTls | None = None,
        tls_client: TlsClient | None = None,
    ) -> None:
        self.data_dir, self.service, self.password = data_dir, service, password
        self.ready_timeout_s = ready_timeout_s
        self.tls, self.tls_client = tls, tls_client
        args: tuple[str, ...] = ("--masterauth", password) if password is not None else ()
        if tls is not None:
            args += ("--tls-replication", "yes")
            if tls_client is not None:
                args += ("--tls-client-cert-file", str(tls_client.cert_file))
                args += ("--tls-client-key-file", str(tls_client.key_file))
        self.nodes = [
            RedisServer(data_dir=data_dir / f"node{i}", password=password, aof=aof, args=args, tls=tls)
            for i in range(1 + replicas)
        ]
        self._sentinel_options: dict[str, Any] = {
            "down_after_ms": down_after_ms, "failover_timeout_ms": failover_timeout_ms,
            "tls": tls, "tls_client": tls_client,
        }  # fmt: skip
        self.sentinel_count = sentinels
        self.sentinels: list[RedisSentinel] = []

    # -- what a client needs ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.url_for(0)

    def url_for(self, db: int) -> str:
        auth = f":{self.password}@" if self.password is not None else ""
        hosts = ",".join(f"{HOST}:{s.port}" for s in self.sentinels)
        scheme = "rediss+sentinel" if self.tls is not None else "redis+sentinel"
        return f"{scheme}://{auth}{hosts}/{self.service}/{db}"

    def primary(self) -> RedisServer:
        """The node a running sentinel names as the primary."""
        port = self._named_primary_port()
        for node in self.nodes:
            if node.port == port:
                return node
        raise ServiceUnavailable(f"the sentinels name port {port}, which is no node of this group")

    def client(self, node: RedisServer) -> redis.Redis:
        return redis.Redis(HOST, node.port, password=self.password, socket_timeout=5, **self.ssl())

    def ssl(self) -> dict[str, Any]:
        """redis-py's TLS arguments for a client of this group's nodes and sentinels ({} without TLS)."""
        return _ssl(self.tls, self.tls_client)

    # -- the processes ------------------------------------------------------------------------------

    def start(self) -> SentinelGroup:
        primary, *replicas = self.nodes
        primary.start()
        for node in replicas:
            node.args = (*node.args, "--replicaof", HOST, str(primary.port))
            node.start()
        self.sentinels = [
            RedisSentinel(
                data_dir=self.data_dir / f"sentinel{i}",
                service=self.service,
                primary_port=primary.port,
                primary_password=self.password,
                **self._sentinel_options,
            )
            for i in range(self.sentinel_count)
        ]
        for sentinel in self.sentinels:
            sentinel.start()
        self._wait_ready(primary, replicas)
        return self

    def kill_primary(self) -> RedisServer:
        """kill -9 the current primary; returns it (to `revive` later)."""
        node = self.primary()
        node.kill9()
        return node

    def wait_for_failover(self, old_port: int, timeout_s: float = 60.0) -> float:
        """Seconds until every running sentinel names a primary other than `old_port` and it answers as
        one; ServiceUnavailable after `timeout_s`."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            try:
                ports = {s.primary_address() for s in self.sentinels if s.running}
                if len(ports) == 1 and (port := ports.pop()) is not None and port[1] != old_port:
                    node = next(n for n in self.nodes if n.port == port[1])
                    with self.client(node) as client:
                        if client.execute_command("ROLE")[0] == b"master":
                            return time.monotonic() - started
            except (redis.RedisError, OSError, StopIteration):
                pass
            time.sleep(0.05)
        raise ServiceUnavailable(f"no sentinel named a new primary within {timeout_s:g} s")

    def revive(self, node: RedisServer) -> RedisServer:
        """Start a dead node again as a replica of the current primary (what an operator does: a node
        that came back as a primary of its own would serve stale data until the sentinels demote it)."""
        primary = self.primary()
        node.args = (*_without_replicaof(node.args), "--replicaof", HOST, str(primary.port))
        return node.start()

    def close(self) -> None:
        for server in [*self.sentinels, *self.nodes]:
            server.stop(timeout_s=10)

    def __enter__(self) -> SentinelGroup:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------------

    def _named_primary_port(self) -> int:
        for sentinel in self.sentinels:
            if sentinel.running:
                try:
                    address = sentinel.primary_address()
                except redis.RedisError:
                    continue
                if address is not None:
                    return address[1]
        raise ServiceUnavailable("no running sentinel names a primary")

    def _wait_ready(self, primary: RedisServer, replicas: list[RedisServer]) -> None:
        """Until each replica is in sync and each sentinel knows every replica and the other sentinels:
        a failover asked for earlier could find no one to promote, or no quorum."""
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            try:
                if self._ready(replicas):
                    return
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise ServiceUnavailable(
            f"the sentinel group on {primary.port} was not ready within {self.ready_timeout_s:g} s "
            f"(logs under {self.data_dir})"
        )

    def _ready(self, replicas: list[RedisServer]) -> bool:
        for node in replicas:
            with self.client(node) as client:
                if client.info("replication").get("master_link_status") != "up":
                    return False
        for sentinel in self.sentinels:
            with redis.Redis(HOST, sentinel.port, socket_timeout=1, **self.ssl()) as client:
                state: Any = client.sentinel_master(self.service)
                if int(state["num-slaves"]) < len(replicas):
                    return False
                if int(state["num-other-sentinels"]) < len(self.sentinels) - 1:
                    return False
        return True


def _ssl(tls: ServerTls | None, client: TlsClient | None) -> dict[str, Any]:
    if tls is None:
        return {}
    files = {"ssl_certfile": str(client.cert_file), "ssl_keyfile": str(client.key_file)} if client else {}
    return {"ssl": True, "ssl_ca_certs": str(tls.ca_file), **files}


def _without_replicaof(args: tuple[str, ...]) -> list[str]:
    kept: list[str] = []
    skip = 0
    for arg in args:
        if skip:
            skip -= 1
        elif arg == "--replicaof":
            skip = 2
        else:
            kept.append(arg)
    return kept
