"""A primary, a replica and three sentinels of their own for each test (chatlens.bench.redis_sentinel),
with a password, so that every test also shows it never printed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chatlens.bench.redis_sentinel import SentinelGroup

PASSWORD = "sent1nel-Pa55"


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    with SentinelGroup(tmp_path / "redis", password=PASSWORD) as started:
        yield started
