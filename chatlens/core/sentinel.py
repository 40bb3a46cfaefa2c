"""Sentinel URLs: `redis+sentinel://[user:password@]host:port[,host:port...]/SERVICE[/DB]` (and
`rediss+sentinel://` for TLS), parsed into what redis-py's `Sentinel(...).master_for(SERVICE)` needs.

The URL names the sentinels, not the primary: every connection asks them where the primary is, and asks
again once it fails (redis-py's `SentinelConnectionPool`), so a failover needs no restart. The user and
password are the primary's (and its replicas'), as with redis://; sentinels that have a password of their
own take it from CHATLENS_REDIS_SENTINEL_PASSWORD.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

SCHEMES = ("redis+sentinel", "rediss+sentinel")
EXAMPLE = "redis+sentinel://[user:password@]host:26379[,host:26379...]/SERVICE[/DB]"


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int
    username: str | None
    password: str | None
    tls: bool

    @property
    def shown_hosts(self) -> str:
        return ",".join(f"{host}:{port}" for host, port in self.sentinels)


def is_sentinel_url(url: str) -> bool:
    return url.partition("://")[0].lower() in SCHEMES


def parse_sentinel_url(url: str) -> SentinelUrl:
    """The parts of a sentinel URL; ValueError, with no secret in it, naming what is wrong."""
    scheme, _, rest = url.partition("://")
    if "?" in rest or "#" in rest:
        raise ValueError(f"a sentinel URL takes no query or fragment; write {EXAMPLE}")
    netloc, _, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    username = password = None
    if at:
        user, has_password, secret = userinfo.partition(":")
        username = unquote(user) or None
        # redis://secret@host is how some clients spell a bare password, as in redact_url.
        password = unquote(secret) if has_password else unquote(user)
        if not has_password:
            username = None
    if not hostlist:
        raise ValueError(f"no sentinel host:port given; write {EXAMPLE}")
    sentinels = []
    for item in hostlist.split(","):
        host, colon, port = item.strip().rpartition(":")
        if not colon or not host:
            raise ValueError(f"sentinel {item.strip() or '(empty)'!r} is not host:port; write {EXAMPLE}")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"sentinel {host}:{port} has a bad port (1-65535); write {EXAMPLE}")
        sentinels.append((host.strip("[]"), int(port)))
    parts = path.split("/") if path else []
    if not parts or not parts[0]:
        raise ValueError(f"no service name (the sentinels' `sentinel monitor NAME`); write {EXAMPLE}")
    if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        extra = "/".join(parts[1:])
        raise ValueError(f"{extra!r} after the service is not a database number; write {EXAMPLE}")
    db = int(parts[1]) if len(parts) == 2 else 0
    return SentinelUrl(
        tuple(sentinels), unquote(parts[0]), db, username, password, scheme.lower() == "rediss+sentinel"
    )
