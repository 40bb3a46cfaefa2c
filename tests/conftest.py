"""Fixtures: a private redis-server per test session, fakeredis, and isolated settings."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
import redis

from chatlens.core.connection import private_redis
from chatlens.core.settings import get_settings


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """A redis-server of our own on a free port: tests never touch a shared instance."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server); .ci/run installs it")
    with private_redis() as url:
        yield url.removesuffix("/0")


_next_db = iter(range(1, 16))


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """A clean database of the private server for one test."""
    db = next(_next_db, None)
    if db is None:  # more than 15 such tests: reuse db 0, flushed
        db = 0
    url = f"{redis_server}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own MLflow store and reports dir, and settings read afresh."""
    for key in list(os.environ):
        if key.startswith("CHATLENS_") or key == "MLFLOW_TRACKING_URI":
            monkeypatch.delenv(key)
    monkeypatch.setenv("CHATLENS_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("CHATLENS_REPORTS_DIR", str(tmp_path / "reports"))
    # Never a model the user fetched into their own models directory: tests see only what they build.
    monkeypatch.setenv("CHATLENS_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test on a real redis-server belongs to the full suite; `make test-fast` runs without one.
    for item in items:
        if {"redis_url", "redis_server"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # The fast lane does not even import a module whose tests are all slow: importing torch, mlx and
    # transformers alone takes most of a collection.
    if config.getoption("markexpr") == "not slow" and collection_path.suffix == ".py":
        return "\npytestmark = pytest.mark.slow" in collection_path.read_text(encoding="utf-8")
    return None
