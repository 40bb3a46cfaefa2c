"""Redis connections: a real server, or an in-process fakeredis for the embedded default."""

from __future__ import annotations

from pathlib import Path

import fakeredis
import redis

from chatlens.core.errors import ChatlensError, ServiceUnavailable
from chatlens.core.redact import redact_text, redact_url
from chatlens.core.settings import Settings, check_redis_url

FAKE_URL = "fakeredis://"
# One in-process server, so every connection the embedded default opens sees the same data.
_FAKE_SERVER = fakeredis.FakeServer()


def connect_settings(settings: Settings, url: str | None = None) -> redis.Redis:
    """`connect` to `url` (a --redis-url flag) or the settings' URL, with the settings' TLS files."""
    return connect(
        url or settings.redis_url,
        ca_file=settings.redis_tls_ca_file,
        cert_file=settings.redis_tls_cert_file,
        key_file=settings.redis_tls_key_file,
    )


def connect(
    url: str,
    *,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
) -> redis.Redis:
    """Return a connection, checked with a PING so a wrong URL, password or certificate fails here with
    one clear line; no line ever shows the password."""
    if url == FAKE_URL:
        # RQ stores bytes, so no decode_responses on any connection it shares.
        return fakeredis.FakeRedis(server=_FAKE_SERVER)
    try:
        check_redis_url(url)
    except ValueError as exc:
        raise ChatlensError(f"--redis-url / CHATLENS_REDIS_URL: {exc}") from None
    shown = redact_url(url)
    tls: dict[str, str] = {}
    for name, path, setting in (
        ("ssl_ca_certs", ca_file, "CHATLENS_REDIS_TLS_CA_FILE"),
        ("ssl_certfile", cert_file, "CHATLENS_REDIS_TLS_CERT_FILE"),
        ("ssl_keyfile", key_file, "CHATLENS_REDIS_TLS_KEY_FILE"),
    ):
        if path is not None:
            if not Path(path).is_file():
                raise ChatlensError(f"{setting}: {path} is not a readable file; fix the path")
            tls[name] = str(path)
    if tls and not url.lower().startswith("rediss://"):
        raise ChatlensError(
            f"TLS files are set but {shown} is not a rediss:// URL; use rediss://host:port/db"
        )
    try:
        connection = redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30, **tls)
        connection.ping()
    except ValueError as exc:  # redis-py's own URL parser: a bad port or db
        raise ChatlensError(
            f"--redis-url / CHATLENS_REDIS_URL: {redact_text(str(exc), url)} ({shown})"
        ) from None
    except redis.RedisError as exc:
        raise ServiceUnavailable(_connection_problem(exc, url, shown)) from None
    return connection


def _connection_problem(exc: redis.RedisError, url: str, shown: str) -> str:
    detail = redact_text(str(exc), url).rstrip(".")
    if isinstance(exc, redis.AuthenticationError) or "NOAUTH" in detail or "WRONGPASS" in detail:
        return (
            f"authentication failed at {shown} ({detail}); check the password (and ACL user) in "
            "CHATLENS_REDIS_URL, e.g. redis://user:password@host:6379/0"
        )
    if any(word in detail.lower() for word in ("ssl", "tls", "certificate")):
        return (
            f"TLS handshake with {shown} failed ({detail}); check CHATLENS_REDIS_TLS_CA_FILE (the CA that "
            "signed the server's certificate), the client cert/key files, and that the port speaks TLS"
        )
    if url.lower().startswith("rediss://") and isinstance(exc, redis.TimeoutError):
        return (
            f"TLS handshake with {shown} timed out ({detail}); check that this port speaks TLS "
            "(redis-server --tls-port), or use redis:// for a plain port"
        )
    if url.lower().startswith("redis://") and ("closed by server" in detail or "reset by peer" in detail):
        return (
            f"Redis at {shown} closed the connection ({detail}); if the server only speaks TLS, "
            "use a rediss:// URL with CHATLENS_REDIS_TLS_CA_FILE"
        )
    return f"cannot reach Redis at {shown} ({detail}); start redis-server or set CHATLENS_REDIS_URL"
