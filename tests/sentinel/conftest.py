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
    # Sentinels call a primary down after 5 s without a reply, not the launcher's 1 s: on a loaded host a
    # new primary busy with its first full resync missed 1 s of PINGs, and a second failover promoted the
    # old primary, revived mid-resync, losing the writes the new one had taken alone (seen in CI).
    with SentinelGroup(tmp_path / "redis", password=PASSWORD, down_after_ms=5_000) as started:
        yield started
