"""Redis connections: a real server, or an in-process fakeredis for the embedded default."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import fakeredis
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from chatlens.core.errors import ChatlensError, ServiceUnavailable
from chatlens.core.redact import redact_text, redact_url
from chatlens.core.sentinel import SentinelUrl, is_sentinel_url, parse_sentinel_url
from chatlens.core.settings import Settings, check_redis_url

FAKE_URL = "fakeredis://"
# One in-process server, so every connection the embedded default opens sees the same data.
_FAKE_SERVER = fakeredis.FakeServer()


def connect_settings(settings: Settings, url: str | None = None) -> redis.Redis:
    """`connect` to `url` (a --redis-url flag) or the settings' URL, with the settings' TLS files."""
    secret = settings.redis_sentinel_password
    return connect(
        url or settings.redis_url,
        ca_file=settings.redis_tls_ca_file,
        cert_file=settings.redis_tls_cert_file,
        key_file=settings.redis_tls_key_file,
        failover_s=settings.redis_failover_s,
        sentinel_password=secret.get_secret_value() if secret is not None else None,
    )


def connect(
    url: str,
    *,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    failover_s: float = 30.0,
    sentinel_password: str | None = None,
) -> redis.Redis:
    """Return a connection, checked with a PING so a wrong URL, password or certificate fails here with
    one clear line; no line ever shows the password. A sentinel URL gives a client of the primary the
    sentinels name, whose commands retry for up to `failover_s` while they elect another."""
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
    if is_sentinel_url(url):
        return _connect_sentinel(parse_sentinel_url(url), url, shown, tls, failover_s, sentinel_password)
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


def failover_retry(failover_s: float) -> Retry:
    """Retries spanning `failover_s` of sleep (0.2, 0.4, 0.8, then 1 s apart): a command that meets the
    dead primary, or the demoted one (its ReadOnlyError is a ConnectionError to a sentinel client), asks
    the sentinels again until they name the new one."""
    return Retry(ExponentialBackoff(cap=1.0, base=0.1), retries=int(failover_s) + 2)


def _connect_sentinel(
    parsed: SentinelUrl,
    url: str,
    shown: str,
    tls: dict[str, str],
    failover_s: float,
    sentinel_password: str | None,
) -> redis.Redis:
    if tls and not parsed.tls:
        raise ChatlensError(
            f"TLS files are set but {shown} is not a rediss+sentinel:// URL; use "
            "rediss+sentinel://host:26379,host:26379/SERVICE"
        )
    sentinel, connection = sentinel_client(parsed, tls, failover_s, sentinel_password)
    try:
        # Without the client's retries first: unreachable sentinels are one line now, not after failover_s.
        sentinel.discover_master(parsed.service)
        connection.ping()
    except redis.RedisError as exc:
        raise ServiceUnavailable(_sentinel_problem(exc, parsed, url, shown)) from None
    return connection


def sentinel_client(
    parsed: SentinelUrl, tls: dict[str, str], failover_s: float, sentinel_password: str | None
) -> tuple[Sentinel, redis.Redis]:
    """The sentinels, and a client of the primary they name (not yet connected). With rediss+sentinel://
    both speak TLS with the same CA and client certificate."""
    ssl: dict[str, Any] = {"ssl": True, **tls} if parsed.tls else {}
    # Sentinels are asked once each, quickly: master discovery moves on to the next one by itself.
    sentinel = Sentinel(
        parsed.sentinels,
        sentinel_kwargs={
            "socket_connect_timeout": 2, "socket_timeout": 2, "password": sentinel_password, **ssl
        },
    )  # fmt: skip
    connection = sentinel.master_for(
        parsed.service,
        db=parsed.db,
        username=parsed.username,
        password=parsed.password,
        socket_connect_timeout=5,
        health_check_interval=30,
        retry=failover_retry(failover_s),
        **ssl,
    )
    return sentinel, connection


_CONNECT_ERROR = re.compile(r"Error -?\d+ connecting to \S+?:\d+\.\s*[^.;)]*")


def _sentinel_problem(exc: redis.RedisError, parsed: SentinelUrl, url: str, shown: str) -> str:
    detail = redact_text(str(exc), url).rstrip(".")
    hosts = parsed.shown_hosts
    if isinstance(exc, MasterNotFoundError):
        lowered = detail.lower()
        if any(word in lowered for word in ("invalid password", "noauth", "wrongpass", "authentication")):
            return (
                f"the sentinels at {hosts} refused the password ({detail}); set "
                "CHATLENS_REDIS_SENTINEL_PASSWORD to their requirepass (the URL's password is the primary's)"
            )
        if " - " in detail:  # redis-py lists each sentinel's error after the repr of its client
            errors = "; ".join(sorted(set(_CONNECT_ERROR.findall(detail))) or [detail])
            return (
                f"cannot reach any sentinel at {hosts} ({errors}); start the sentinels or fix the hosts "
                f"in CHATLENS_REDIS_URL ({shown})"
            )
        return (
            f"the sentinels at {hosts} know no primary named {parsed.service!r}, or it is down ({detail}); "
            "check SERVICE in CHATLENS_REDIS_URL against their `sentinel monitor NAME`"
        )
    return _connection_problem(exc, url, shown)


def with_socket_timeout(connection: redis.Redis, seconds: float) -> redis.Redis:
    """A client whose sockets wait at least `seconds` (a blocking dequeue's); `connection` itself if
    its pool already does. A sentinel client stays one: the new pool asks the same sentinels."""
    pool = connection.connection_pool
    timeout = pool.connection_kwargs.get("socket_timeout")  # None: redis-py's default, 5 s
    if timeout is not None and timeout >= seconds:
        return connection
    kwargs = {**pool.connection_kwargs, "socket_timeout": seconds}
    fresh: redis.ConnectionPool
    if isinstance(pool, SentinelConnectionPool):
        kwargs.pop("connection_pool", None)  # the old pool's proxy: the new pool makes its own
        fresh = SentinelConnectionPool(
            pool.service_name,
            pool.sentinel_manager,
            connection_class=pool.connection_class,
            max_connections=pool.max_connections,
            is_master=pool.is_master,
            check_connection=pool.check_connection,
            **kwargs,
        )
    else:
        fresh = type(pool)(
            connection_class=pool.connection_class, max_connections=pool.max_connections, **kwargs
        )
    return type(connection)(connection_pool=fresh)
