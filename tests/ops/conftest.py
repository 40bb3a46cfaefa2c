"""The toy-backend settings fixture of tests/ops (helpers in tests/fixtures/toy_run.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chatlens.core.settings import Settings
from tests.fixtures.toy_run import toy_settings_for


@pytest.fixture
def toy_settings(redis_url: str) -> Iterator[Settings]:
    with toy_settings_for(redis_url) as settings:
        yield settings
