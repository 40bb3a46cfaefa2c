"""The one redis-server launcher and the tests' harness on it: ports, passwords, restarts, kill -9, and a
database per test."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis

import chatlens.bench.redis_server as launcher
from chatlens.bench.redis_server import RedisServer
from chatlens.core.errors import ServiceUnavailable
from tests.redis_harness import Databases, durable_server


def test_a_private_server_answers_on_its_url_and_leaves_nothing_behind() -> None:
    with RedisServer() as server:
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        with redis.Redis.from_url(server.url_for(3)) as client:
            client.set("k", "v")
            assert client.get("k") == b"v"
        data_dir = server.data_dir
        assert data_dir.is_dir() and server.running
    assert not server.running and not data_dir.exists()


def test_a_password_is_required_and_quoted_in_the_url() -> None:
    password = "p@ss:w/rd"
    with RedisServer(password=password) as server:
        assert server.url == f"redis://:p%40ss%3Aw%2Frd@127.0.0.1:{server.port}/0"
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
        with pytest.raises(redis.AuthenticationError), redis.Redis(port=server.port) as anonymous:
            anonymous.set("k", "v")


def test_extra_args_reach_redis_server() -> None:
    with RedisServer(args=("--databases", "40")) as server, redis.Redis.from_url(server.url) as client:
        assert client.config_get("databases") == {"databases": "40"}


@pytest.mark.parametrize("kill9", [False, True])
def test_an_aof_server_restarts_on_its_port_with_its_data(tmp_path: Path, kill9: bool) -> None:
    # appendfsync always: a kill -9 loses nothing acknowledged, so the test is exact either way.
    server = durable_server(tmp_path, appendfsync="always")
    try:
        port, first_pid = server.port, server.pid
        with redis.Redis.from_url(server.url) as client:
            client.rpush("queue", "a", "b")
        server.restart(kill9=kill9)
        assert (server.port, server.data_dir) == (port, tmp_path) and server.pid != first_pid
        with redis.Redis.from_url(server.url) as client:
            assert client.lrange("queue", 0, -1) == [b"a", b"b"]
    finally:
        server.close()
    assert (tmp_path / "appendonlydir").is_dir() and (tmp_path / "redis.log").is_file()  # not ours to delete


def test_a_stopped_server_refuses_connections_until_started_again(tmp_path: Path) -> None:
    server = durable_server(tmp_path)
    try:
        server.stop()
        with pytest.raises(redis.ConnectionError), redis.Redis.from_url(server.url) as client:
            client.ping()
        server.start()
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
    finally:
        server.close()


def test_a_taken_port_on_first_start_moves_to_another(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        ports = iter([busy])
        real = launcher.free_port
        monkeypatch.setattr(launcher, "free_port", lambda: next(ports, None) or real())
        with RedisServer() as server:
            assert server.port != busy
            assert "Address already in use" in server.log_file.read_text()


def test_a_given_port_that_is_taken_is_one_line_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        with pytest.raises(
            ServiceUnavailable, match=rf"did not start on port {busy} .*Address already in use"
        ):
            RedisServer(port=busy).start()


def test_no_binary_is_one_line_saying_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ServiceUnavailable, match=r"redis-server not found; install it"):
        RedisServer().start()


def test_databases_are_never_handed_out_twice_and_a_new_server_follows_the_last() -> None:
    databases = Databases(databases=2)
    try:
        urls = [databases.take() for _ in range(5)]
        assert len(set(urls)) == 5
        assert databases.servers_started == 3
        assert [url.rsplit("/", 1)[1] for url in urls] == ["0", "1", "0", "1", "0"]
        with redis.Redis.from_url(urls[-1]) as client:
            client.set("left", "behind")
        databases._next = 0  # as if the database were handed out again
        with pytest.raises(AssertionError, match=r"database 0 of the test redis-server holds 1 keys"):
            databases.take()
    finally:
        databases.close()
