"""Redis connections: a real server, or an in-process fakeredis for the embedded default."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

import fakeredis
import redis

from chatlens.core.errors import ServiceUnavailable

FAKE_URL = "fakeredis://"
# One in-process server, so every connection the embedded default opens sees the same data.
_FAKE_SERVER = fakeredis.FakeServer()


def connect(url: str) -> redis.Redis:
    """Return a connection, checked with a PING so a wrong URL fails here with one clear line."""
    if url == FAKE_URL:
        # RQ stores bytes, so no decode_responses on any connection it shares.
        return fakeredis.FakeRedis(server=_FAKE_SERVER)
    connection = redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)
    try:
        connection.ping()
    except redis.RedisError as exc:
        raise ServiceUnavailable(
            f"cannot reach Redis at {url} ({exc}); start redis-server or set CHATLENS_REDIS_URL"
        ) from exc
    return connection


@contextmanager
def private_redis() -> Iterator[str]:
    """A throw-away redis-server on a free port (tests, bench): never a shared instance."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceUnavailable("redis-server not found; install it (apt-get install redis-server)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as workdir:
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        proc = subprocess.Popen([*command, "--dir", workdir], stdout=subprocess.DEVNULL)
        url = f"redis://127.0.0.1:{port}/0"
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    redis.Redis.from_url(url).ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise ServiceUnavailable(f"redis-server did not start on port {port}") from None
                    time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            proc.wait(10)
