"""Redis connections: a real server, or an in-process fakeredis for the embedded default."""

from __future__ import annotations

import fakeredis
import redis

from chatlens.errors import ServiceUnavailable

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
