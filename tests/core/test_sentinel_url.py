"""Sentinel URLs without a server: what they parse to, every malformed one as one line (exit 2), and
sentinels nobody listens on as one line (exit 3), the password masked everywhere."""

from __future__ import annotations

from pathlib import Path

import fakeredis
import pytest
from redis.connection import SSLConnection
from redis.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedSSLConnection

from chatlens.bench.redis_server import free_port
from chatlens.core.connection import connect, failover_retry, sentinel_client, with_socket_timeout
from chatlens.core.errors import ChatlensError, ServiceUnavailable
from chatlens.core.redact import redact_url
from chatlens.core.replication import ReplicaAck
from chatlens.core.sentinel import SentinelUrl, parse_sentinel_url
from chatlens.core.settings import Settings
from tests.helpers import run_chatlens, subprocess_env

PASSWORD = "s3nt-Pa55word"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "redis+sentinel://h1:26379,h2:26380,h3:26381/mymaster",
            SentinelUrl((("h1", 26379), ("h2", 26380), ("h3", 26381)), "mymaster", 0, None, None, False),
        ),
        (
            f"redis+sentinel://alice:{PASSWORD}@h1:26379/svc/3",
            SentinelUrl((("h1", 26379),), "svc", 3, "alice", PASSWORD, False),
        ),
        (
            "rediss+sentinel://:p%40ss@10.0.0.1:26379,10.0.0.2:26379/svc/0",
            SentinelUrl((("10.0.0.1", 26379), ("10.0.0.2", 26379)), "svc", 0, None, "p@ss", True),
        ),
        ("REDIS+SENTINEL://h:1/s", SentinelUrl((("h", 1),), "s", 0, None, None, False)),
    ],
)
def test_a_sentinel_url_parses_to_its_sentinels_service_db_and_credentials(
    url: str, expected: SentinelUrl
) -> None:
    assert parse_sentinel_url(url) == expected


BAD_URLS = [
    ("redis+sentinel://h1:26379", "no service name"),
    ("redis+sentinel://h1:26379/", "no service name"),
    (f"redis+sentinel://:{PASSWORD}@/svc", "no sentinel host:port"),
    ("redis+sentinel:///svc", "no sentinel host:port"),
    ("redis+sentinel://h1/svc", "is not host:port"),
    ("redis+sentinel://h1:26379,/svc", "is not host:port"),
    (f"redis+sentinel://:{PASSWORD}@h1:notaport/svc", "bad port"),
    ("redis+sentinel://h1:0/svc", "bad port"),
    ("redis+sentinel://h1:70000/svc", "bad port"),
    ("redis+sentinel://h1:26379/svc/x", "not a database number"),
    ("redis+sentinel://h1:26379/svc/0/1", "not a database number"),
    (f"redis+sentinel://h1:26379/svc?password={PASSWORD}", "no query"),
]


@pytest.mark.parametrize(("url", "problem"), BAD_URLS)
def test_a_malformed_sentinel_url_is_one_line_exit_2_without_the_password(
    url: str, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ChatlensError) as raised:
        connect(url)
    assert raised.value.exit_code == 2
    message = str(raised.value)
    assert problem in message and "\n" not in message and PASSWORD not in message
    monkeypatch.setenv("CHATLENS_REDIS_URL", url)
    with pytest.raises(Exception, match=problem):  # the settings refuse it as well
        Settings()


def test_the_cli_says_a_malformed_sentinel_url_in_one_line_with_exit_2() -> None:
    url, problem = BAD_URLS[6]
    done = run_chatlens("failed", env=subprocess_env(CHATLENS_REDIS_URL=url), timeout=120)
    assert done.returncode == 2, done.stderr
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert len(lines) == 1 and problem in lines[0] and PASSWORD not in lines[0], lines


def test_redaction_keeps_every_sentinel_host_and_masks_the_password() -> None:
    url = f"redis+sentinel://alice:{PASSWORD}@h1:26379,h2:26380/svc/2"
    assert redact_url(url) == "redis+sentinel://alice:***@h1:26379,h2:26380/svc/2"
    assert PASSWORD not in repr(Settings(redis_url=url))


def test_sentinels_nobody_listens_on_are_one_line_exit_3_without_the_password() -> None:
    url = f"redis+sentinel://:{PASSWORD}@127.0.0.1:{free_port()},127.0.0.1:{free_port()}/svc"
    with pytest.raises(ServiceUnavailable) as raised:
        connect(url, failover_s=1)
    message = str(raised.value)
    assert raised.value.exit_code == 3 and "\n" not in message and PASSWORD not in message
    assert "cannot reach any sentinel" in message and "127.0.0.1" in message
    # each sentinel's own error, not redis-py's dump of its client objects
    assert message.count("Connection refused") == 2 and "<redis." not in message, message


def test_tls_files_with_a_plain_sentinel_url_are_refused(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(ChatlensError, match="not a rediss\\+sentinel:// URL"):
        connect("redis+sentinel://127.0.0.1:1/svc", ca_file=ca)


def test_a_lone_redis_is_never_waited_for(fake_redis: fakeredis.FakeRedis) -> None:
    ack = ReplicaAck(fake_redis)
    assert ack.wanted() == 0
    ack.write(lambda pipe: pipe.set("k", "v"), "a write")
    assert fake_redis.get("k") == b"v" and ack.resends == 0


def test_a_worker_s_longer_socket_timeout_keeps_a_sentinel_client_following_the_sentinels() -> None:
    sentinel = Sentinel([("127.0.0.1", free_port())])
    client = sentinel.master_for("svc", socket_timeout=5, retry=failover_retry(3))
    longer = with_socket_timeout(client, 70)
    pool = longer.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "svc"
    assert pool.sentinel_manager is sentinel and pool.connection_kwargs["socket_timeout"] == 70
    old_proxy = client.connection_pool.connection_kwargs["connection_pool"]
    assert pool.connection_kwargs["connection_pool"] is not old_proxy  # its own, which knows its pool
    assert with_socket_timeout(longer, 60) is longer  # long enough already


def test_redis_py_still_has_the_transaction_step_ack_pipeline_extends() -> None:
    """AckPipeline sends WAIT from inside redis-py's private `Pipeline._execute_transaction` (the one
    place holding the EXEC's connection): an upgrade that renames it must fail here, not silently."""
    import inspect

    from redis.client import Pipeline

    from chatlens.core.replication import AckPipeline

    parameters = list(inspect.signature(Pipeline._execute_transaction).parameters)
    assert parameters == ["self", "connection", "commands", "raise_on_error"]
    assert "_execute_transaction" in AckPipeline.__dict__


def test_a_rediss_sentinel_url_speaks_tls_to_the_sentinels_and_the_primary(tmp_path: Path) -> None:
    parsed = parse_sentinel_url(f"rediss+sentinel://alice:{PASSWORD}@127.0.0.1:26379/svc/2")
    tls = {"ssl_ca_certs": str(tmp_path / "ca.pem")}
    sentinel, client = sentinel_client(parsed, tls, failover_s=3, sentinel_password="sentinel-pw")
    pool = client.connection_pool
    assert issubclass(pool.connection_class, SentinelManagedSSLConnection)
    kwargs = pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("alice", PASSWORD, 2)
    assert kwargs["ssl_ca_certs"] == tls["ssl_ca_certs"]
    (one,) = sentinel.sentinels
    sentinel_kwargs = one.connection_pool.connection_kwargs
    assert sentinel_kwargs["password"] == "sentinel-pw"
    assert sentinel_kwargs["ssl_ca_certs"] == tls["ssl_ca_certs"]
    assert issubclass(one.connection_pool.connection_class, SSLConnection)
    assert kwargs["retry"].get_retries() == 5  # failover_s + 2 tries, about failover_s of sleep
