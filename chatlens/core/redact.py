"""Redaction of secrets in URLs: the one function every printed, logged or stored URL goes through."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query arguments that redis-py (and URLs in general) accept as secrets.
# Schemes whose netloc lists several host:port pairs (chatlens/core/sentinel.py).
_MULTI_HOST_SCHEMES = frozenset({"redis+sentinel", "rediss+sentinel"})
_SECRET_QUERY_ARGS = frozenset({"password", "pass", "pwd", "secret", "token", "ssl_password"})


def redact_url(url: str) -> str:
    """`url` with its password (user-info and query) replaced by ***; scheme, user, host, port, db kept.

    A URL that cannot be parsed is masked whole after its scheme, since it may still hold a secret.
    """
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in _MULTI_HOST_SCHEMES:
        return _redact_multi_host(scheme, rest)
    if "://" not in url and "@" in url:  # user:pw@host:6379 with no scheme parses as a path
        return f"{MASK}@{url.rpartition('@')[2]}"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port, so such a URL is masked too
    except ValueError:
        scheme, sep, _ = url.partition("://")
        return f"{scheme}{sep}{MASK}" if sep else MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        # redis://secret@host is how some clients spell a bare password: mask a lone user-info too.
        netloc = f"{user}:{MASK}@{hostport}" if has_password else f"{MASK}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(key.lower() in _SECRET_QUERY_ARGS for key, _ in pairs):
            query = urlencode(
                [(k, MASK if k.lower() in _SECRET_QUERY_ARGS else v) for k, v in pairs], safe="*"
            )
    if netloc == parts.netloc and query == parts.query:
        return url
    # Spelled out rather than urlunsplit, which drops the // of an empty host (unix:///path).
    text = (
        f"{parts.scheme}://{netloc}{parts.path}"
        if "://" in url
        else urlunsplit(parts._replace(netloc=netloc, query="", fragment=""))
    )
    return text + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")


def _redact_multi_host(scheme: str, rest: str) -> str:
    """A sentinel URL (host:port,host:port...), which urlsplit cannot parse: the user-info's password and
    any query masked, the hosts kept so that an error line still says where."""
    netloc, slash, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if at:
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hosts}" if has_password else f"{MASK}@{hosts}"
    path, query, _ = path.partition("?")
    return f"{scheme}://{netloc}{slash}{path}" + ("?" + MASK if query else "")


def redact_text(text: str, url: str) -> str:
    """`text` (an error message about `url`) with every occurrence of the URL's secrets masked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return text.replace(url, redact_url(url))
    text = text.replace(url, redact_url(url))
    secrets = [parts.password] if parts.password else []
    if parts.username and parts.password is None:
        secrets.append(parts.username)
    secrets += [v for k, v in parse_qsl(parts.query) if k.lower() in _SECRET_QUERY_ARGS and v]
    # Longest first, and both as written and percent-decoded (redis-py decodes before use).
    for secret in sorted({*secrets, *(unquote(s) for s in secrets)}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
