"""Fixtures: private redis-servers with a database per test, fakeredis, and isolated settings; which
tests make up the fast lane (`make test-fast`, `-m "not slow"`)."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import fakeredis
import pytest
import redis

from chatlens.core.settings import get_settings
from tests.redis_harness import Databases

TESTS = Path(__file__).resolve().parent

# Directories and modules (relative to tests/) whose every test needs a real model, a subprocess or a
# real redis-server: marked slow here, by where they are, and not even imported by the fast lane
# (importing torch, mlx and transformers alone takes most of a collection). A module of slow tests that is
# not listed still runs in the full suite and is deselected from the fast lane, only imported for nothing:
# the session's summary names it. A new area of slow tests is best its own directory (one line here).
SLOW_PATHS = (
    "bench",
    "onnx",
    "scripts",
    "training",
    "test_demo.py",
    "test_end_to_end.py",
    "test_summary_backends.py",
    "test_three_classifiers.py",
    "backends/test_accurate.py",
    "backends/test_emotion.py",
    "backends/test_extractive.py",
    "backends/test_llamacpp_summariser.py",
    "backends/test_minilm.py",
    "backends/test_mlx_summariser.py",
    "backends/test_transformers_summariser.py",
    "backends/test_zeroshot.py",
    "eval/test_nightly.py",
    "eval/test_regression.py",
    "ops/test_exporter.py",
    "ops/test_status.py",
    "worker/test_dead_letters.py",
    "worker/test_foreign_jobs.py",
    "worker/test_jobs.py",
    "worker/test_recovery.py",
    "worker/test_toy_backend.py",
    "worker/test_worker_process.py",
)
# Fixtures that start a real redis-server: a test using one is slow wherever it is.
REDIS_FIXTURES = frozenset({"redis_url", "redis_databases"})
_UNLISTED = pytest.StashKey[list[str]]()


def is_slow_path(path: Path) -> bool:
    try:
        relative = path.resolve().relative_to(TESTS)
    except ValueError:
        return False
    return any(relative == Path(slow) or Path(slow) in relative.parents for slow in SLOW_PATHS)


def fast_lane(config: pytest.Config) -> bool:
    return " ".join(str(config.getoption("markexpr")).split()) == "not slow"


@pytest.fixture(scope="session")
def redis_databases() -> Iterator[Databases]:
    """Private redis-servers on free ports: tests never touch a shared instance."""
    databases = Databases()
    yield databases
    databases.close()


@pytest.fixture
def redis_url(redis_databases: Databases) -> Iterator[str]:
    """A database of its own for one test, never used before (see `Databases` for why not a flushed one);
    emptied afterwards, to keep the server's memory small."""
    url = redis_databases.take()
    yield url
    with redis.Redis.from_url(url) as client:
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


def pytest_configure(config: pytest.Config) -> None:
    missing = [slow for slow in SLOW_PATHS if not (TESTS / slow).exists()]
    if missing:
        raise pytest.UsageError(
            f"tests/conftest.py SLOW_PATHS names {', '.join(missing)}, which do not exist: "
            "update the list where a test module moved or went"
        )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    return True if fast_lane(config) and is_slow_path(collection_path) else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test on a real redis-server belongs to the full suite; `make test-fast` runs without one.
    by_module: dict[Path, list[bool]] = defaultdict(list)
    for item in items:
        if is_slow_path(item.path) or REDIS_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        by_module[item.path].append(item.get_closest_marker("slow") is not None)
    config.stash[_UNLISTED] = sorted(
        str(path.relative_to(TESTS))
        for path, slow in by_module.items()
        if all(slow) and not is_slow_path(path) and path.is_relative_to(TESTS)
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    unlisted = config.stash.get(_UNLISTED, [])
    if unlisted:
        terminalreporter.write_line(
            f"note: only slow tests in {', '.join(unlisted)}; add them to SLOW_PATHS in tests/conftest.py "
            "so that the fast lane does not import them"
        )
