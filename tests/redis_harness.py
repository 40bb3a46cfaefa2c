"""The redis-servers of the tests and of scripts/, on `chatlens.bench.redis_server`'s one launcher.

- `Databases`: the `redis_url` fixture's databases (tests/conftest.py): each test gets one no earlier
  test used, on a private server.
- `durable_server`: a server with AOF on, to be stopped (SIGTERM), killed -9 and started again on the
  same port and data directory (tests/worker/test_recovery.py, scripts/fault_drill.py).
- `SentinelGroup` (chatlens.bench.redis_sentinel): a primary, a replica and three sentinels
  (tests/sentinel/, scripts/fault_drill.py --sentinel).
- `RedisServer` itself for anything else: a password, TLS, a throw-away server (scripts/scale_check.py).

No pytest here: scripts import this module too.
"""

from __future__ import annotations

from pathlib import Path

import redis

from chatlens.bench.redis_server import RedisServer, ServerTls, free_port

__all__ = ["Databases", "RedisServer", "ServerTls", "durable_server", "free_port"]

# Databases per test server (redis-server's default is 16): one server serves a whole test session.
DATABASES = 256


class Databases:
    """Hands each test a database of its own: never one an earlier test used.

    Flushing a shared database between tests is not isolation: a worker subprocess or a thread that a
    test left behind keeps writing into it, into the next test's data. A fresh database per test cannot
    be reached by an earlier test's leftovers, since nothing else was ever given its URL. When one
    server's databases are all used, the next test gets a new server (the old one is stopped: its
    tests are over), so the count of tests is never a limit and nothing falls back to sharing.
    """

    def __init__(self, databases: int = DATABASES) -> None:
        self.databases = databases
        self.servers_started = 0
        self._server: RedisServer | None = None
        self._next = databases  # no server yet: the first `take` starts one

    def take(self) -> str:
        """The URL of a fresh, empty database; raises if it is not empty (something wrote there)."""
        if self._server is None or self._next == self.databases:
            self.close()
            self._server = RedisServer(args=("--databases", str(self.databases))).start()
            self.servers_started += 1
            self._next = 0
        db, self._next = self._next, self._next + 1
        url = self._server.url_for(db)
        with redis.Redis.from_url(url) as client:
            keys = client.dbsize()
        if keys:
            raise AssertionError(f"database {db} of the test redis-server holds {keys} keys before its test")
        return url

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


def durable_server(data_dir: Path, appendfsync: str = "everysec") -> RedisServer:
    """A started redis-server with AOF on in `data_dir` (its log: `data_dir/redis.log`): `stop()` then
    `start()` is an operator's restart, `kill9()` then `start()` a crash, both on the same port."""
    return RedisServer(data_dir=data_dir, aof=True, appendfsync=appendfsync).start()
