"""Secrets: URLs are redacted wherever printed; password, ACL user and TLS work against a real server;
each way of failing to connect is one line with the right advice and never shows the password."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from chatlens.core import keys
from chatlens.core.connection import connect, connect_settings
from chatlens.core.errors import ChatlensError, ServiceUnavailable
from chatlens.core.redact import redact_text, redact_url
from chatlens.core.settings import Settings, get_settings
from tests.fixtures.tls_certs import TlsFiles, make_ca, make_tls_files
from tests.helpers import run_chatlens, subprocess_env
from tests.redis_harness import RedisServer, ServerTls

PASSWORD = "s3cr3t-Pa55word"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:hunter2@db.example:6380/3", "redis://:***@db.example:6380/3"),
        ("redis://alice:hunter2@db.example:6379/0", "redis://alice:***@db.example:6379/0"),
        ("rediss://alice:p%40ss@db.example:6380/1", "rediss://alice:***@db.example:6380/1"),
        ("redis://hunter2@db.example:6379/0", "redis://***@db.example:6379/0"),
        ("redis://db.example:6379/0", "redis://db.example:6379/0"),
        ("unix:///run/redis.sock?db=2&password=hunter2", "unix:///run/redis.sock?db=2&password=***"),
        ("redis://:hunter2@db.example:notaport/0", "redis://***"),
        ("fakeredis://", "fakeredis://"),
        (":hunter2@db.example:6379", "***@db.example:6379"),
        ("127.0.0.1:6379", "127.0.0.1:6379"),
    ],
)
def test_redact_url_masks_the_password_and_keeps_host_port_db(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert "hunter2" not in redact_url(url) and "p%40ss" not in redact_url(url)


def test_redact_text_masks_the_password_inside_an_error_message() -> None:
    url = "redis://bob:p%40ss@h:1/0"
    text = f"Error connecting to {url}: bob with p@ss and p%40ss refused"
    assert redact_text(text, url) == "Error connecting to redis://bob:***@h:1/0: bob with *** and *** refused"


def test_settings_repr_hides_the_password_but_keeps_the_url_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATLENS_REDIS_URL", f"redis://alice:{PASSWORD}@db:6379/0")
    settings = Settings()
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings)
    assert "redis://alice:***@db:6379/0" in repr(settings)
    assert settings.redis_url == f"redis://alice:{PASSWORD}@db:6379/0"


def test_settings_repr_hides_an_mlflow_uri_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATLENS_MLFLOW_TRACKING_URI", f"postgresql://ml:{PASSWORD}@pg:5432/mlflow")
    settings = Settings()
    assert PASSWORD not in repr(settings) and "postgresql://ml:***@pg:5432/mlflow" in repr(settings)
    assert settings.mlflow_tracking_uri == f"postgresql://ml:{PASSWORD}@pg:5432/mlflow"


def test_a_bad_redis_url_setting_is_one_line_without_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATLENS_REDIS_URL", f"http://:{PASSWORD}@db:6379/0")
    with pytest.raises(ChatlensError) as caught:
        get_settings()
    assert "CHATLENS_REDIS_URL" in str(caught.value) and "not a Redis URL" in str(caught.value)
    assert PASSWORD not in str(caught.value) and "\n" not in str(caught.value)


def test_unreachable_redis_is_one_line_with_the_password_masked() -> None:
    with pytest.raises(ServiceUnavailable) as caught:
        connect(f"redis://:{PASSWORD}@127.0.0.1:1/0")
    message = str(caught.value)
    assert message.startswith("cannot reach Redis at redis://:***@127.0.0.1:1/0")
    assert "start redis-server" in message and PASSWORD not in message


def test_tls_files_need_a_rediss_url(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("not used")
    with pytest.raises(ChatlensError, match="not a rediss:// URL"):
        connect("redis://127.0.0.1:1/0", ca_file=ca)
    with pytest.raises(ChatlensError, match=r"CHATLENS_REDIS_TLS_CA_FILE: .* not a readable file"):
        connect("rediss://127.0.0.1:1/0", ca_file=tmp_path / "missing.crt")


# -- a real redis-server with requirepass and an ACL user ---------------------------------------------


@pytest.fixture(scope="module")
def password_server() -> Iterator[str]:
    with RedisServer(password=PASSWORD) as server:
        admin = redis.Redis.from_url(server.url)
        admin.acl_setuser("carol", enabled=True, passwords=["+carol-pw-42"], keys=["*"], commands=["+@all"])
        yield server.url


@pytest.mark.slow
def test_the_right_password_and_an_acl_user_connect(password_server: str) -> None:
    assert connect(password_server).ping()
    assert connect(password_server.replace(f":{PASSWORD}@", "carol:carol-pw-42@")).ping()


@pytest.mark.slow
@pytest.mark.parametrize(
    "wrong",
    [
        lambda url: url.replace(PASSWORD, "not-the-password"),  # WRONGPASS
        lambda url: url.replace(f":{PASSWORD}@", ""),  # no password: NOAUTH
        lambda url: url.replace(f":{PASSWORD}@", f"carol:{PASSWORD}@"),  # ACL user, another's password
    ],
)
def test_a_wrong_password_is_authentication_failed_not_unreachable(password_server: str, wrong) -> None:
    with pytest.raises(ServiceUnavailable) as caught:
        connect(wrong(password_server))
    message = str(caught.value)
    assert message.startswith("authentication failed at ") and "check the password" in message
    assert "start redis-server" not in message and PASSWORD not in message


@pytest.mark.slow
def test_cli_with_the_right_password_produces_and_reads_back(password_server: str, tmp_path: Path) -> None:
    data = tmp_path / "m.csv"
    data.write_text("conversation_id,message,sentiment\n1,hello there,Happy\n1,so sad,Sad\n")
    env = subprocess_env(CHATLENS_REDIS_URL=password_server, CHATLENS_SUMMARISE="false")
    result = run_chatlens("produce", str(data), "--run", "pw", env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert PASSWORD not in result.stdout + result.stderr
    stored = redis.Redis.from_url(password_server).hgetall(keys.messages("pw"))
    assert sorted(json.loads(v)["text"] for v in stored.values()) == ["hello there", "so sad"]


@pytest.mark.slow
def test_cli_with_a_wrong_password_exits_3_with_one_line_and_no_secret(
    password_server: str, tmp_path: Path
) -> None:
    data = tmp_path / "m.csv"
    data.write_text("conversation_id,message\n1,hello\n")
    wrong_secret = "Wr0ng-Secret-xyz"
    env = subprocess_env(CHATLENS_REDIS_URL=password_server.replace(PASSWORD, wrong_secret))
    result = run_chatlens("produce", str(data), "--run", "pw", env=env, timeout=120)
    assert result.returncode == 3
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "authentication failed" in lines[0] and "Traceback" not in result.stderr
    output = result.stdout + result.stderr
    assert wrong_secret not in output and PASSWORD not in output
    assert not list(tmp_path.glob("chatlens-rejects-*"))


# -- TLS ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, TlsFiles, Path]]:
    """rediss:// on a TLS-only redis-server that also requires a client certificate and a password."""
    directory = tmp_path_factory.mktemp("tls")
    files = make_tls_files(directory)
    other_ca, _, _ = make_ca(directory, "other-ca")
    tls = ServerTls(cert_file=files.server_cert, key_file=files.server_key, ca_file=files.ca)
    with RedisServer(password=PASSWORD, tls=tls) as server:
        yield server.url, files, other_ca


@pytest.mark.slow
def test_rediss_with_ca_and_client_cert_works_through_connect(tls: tuple[str, TlsFiles, Path]) -> None:
    url, files, _ = tls
    connection = connect(url, ca_file=files.ca, cert_file=files.client_cert, key_file=files.client_key)
    connection.set("tls-probe", "ok")
    assert connection.get("tls-probe") == b"ok"
    assert connection.connection_pool.connection_class is redis.SSLConnection


@pytest.mark.slow
def test_tls_settings_reach_redis_py(
    tls: tuple[str, TlsFiles, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, files, _ = tls
    monkeypatch.setenv("CHATLENS_REDIS_URL", url)
    monkeypatch.setenv("CHATLENS_REDIS_TLS_CA_FILE", str(files.ca))
    monkeypatch.setenv("CHATLENS_REDIS_TLS_CERT_FILE", str(files.client_cert))
    monkeypatch.setenv("CHATLENS_REDIS_TLS_KEY_FILE", str(files.client_key))
    assert connect_settings(get_settings()).ping()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["wrong CA", "no client cert", "plain redis:// to the TLS port"])
def test_tls_problems_are_one_clear_line(tls: tuple[str, TlsFiles, Path], case: str) -> None:
    url, files, other_ca = tls
    client = {"cert_file": files.client_cert, "key_file": files.client_key}
    attempt = {
        "wrong CA": lambda: connect(url, ca_file=other_ca, **client),
        "no client cert": lambda: connect(url, ca_file=files.ca),
        "plain redis:// to the TLS port": lambda: connect(url.replace("rediss://", "redis://")),
    }[case]
    with pytest.raises(ServiceUnavailable) as caught:
        attempt()
    message = str(caught.value)
    assert "\n" not in message and PASSWORD not in message
    if case == "plain redis:// to the TLS port":
        assert "use a rediss:// URL" in message
    else:
        assert message.startswith("TLS handshake with rediss://:***@127.0.0.1")
        assert "CHATLENS_REDIS_TLS_CA_FILE" in message
    if case == "wrong CA":
        assert "certificate verify failed" in message


@pytest.mark.slow
def test_cli_produce_over_tls_from_settings(tls: tuple[str, TlsFiles, Path], tmp_path: Path) -> None:
    url, files, _ = tls
    data = tmp_path / "m.csv"
    data.write_text("conversation_id,message,sentiment\n1,over tls,Happy\n")
    env = subprocess_env(
        CHATLENS_REDIS_URL=url,
        CHATLENS_REDIS_TLS_CA_FILE=str(files.ca),
        CHATLENS_REDIS_TLS_CERT_FILE=str(files.client_cert),
        CHATLENS_REDIS_TLS_KEY_FILE=str(files.client_key),
        CHATLENS_SUMMARISE="false",
    )
    result = run_chatlens("produce", str(data), "--run", "tls", env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "enqueued 1" in result.stdout and PASSWORD not in result.stdout + result.stderr


def test_demo_prints_the_redis_url_with_the_password_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from chatlens.cli.app import app

    monkeypatch.setenv("CHATLENS_REDIS_URL", f"redis://:{PASSWORD}@127.0.0.1:1/0")
    result = CliRunner().invoke(app, ["demo", "--no-mlflow"])
    assert result.exit_code == 3, result.output
    assert "chatlens demo on redis://:***@127.0.0.1:1/0" in result.output
    assert "cannot reach Redis at redis://:***@127.0.0.1:1/0" in result.output
    assert PASSWORD not in result.output and "Traceback" not in result.output
