"""A new classifier is one module plus one registration line, served by a real worker on a real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from chatlens.backends.classifier import CLASSIFIERS
from chatlens.core import keys
from chatlens.core.errors import ChatlensError
from chatlens.core.queues import default_queues
from chatlens.core.settings import Settings
from producer.pipeline import produce_input
from worker.runner import create_worker

pytestmark = pytest.mark.slow


@pytest.fixture
def toy_registered() -> Iterator[None]:
    CLASSIFIERS.add("toy", "tests.fixtures.toy_classifier:build")  # the one registration line
    yield
    CLASSIFIERS._factories.pop("toy")


def test_a_registered_toy_classifier_runs_through_a_real_worker(
    toy_registered: None, redis_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "m.csv"
    path.write_text("conversation_id,message\n1,I love it\n1,What about you?\n2,It is a table.\n")
    settings = Settings(redis_url=redis_url, classifiers=["toy"], summarise=False)
    counts = produce_input(settings, path, "toy-run", redis_url=redis_url, warn_idle_queues=False)
    assert counts.enqueued == 3
    connection = redis.Redis.from_url(redis_url)
    assert create_worker(settings, connection, default_queues(settings)).work(burst=True)
    raw = connection.hgetall(keys.results("toy-run", "toy"))
    labels = sorted(v.decode().split('"label":"')[1].split('"')[0] for v in raw.values())
    assert labels == ["Curious to dive deeper", "Happy", "Neutral"]


def test_an_unknown_classifier_is_refused_before_anything_is_enqueued(redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("conversation_id,message\n1,hello\n")
    settings = Settings(redis_url=redis_url, classifiers=["default", "nope"])
    with pytest.raises(
        ChatlensError, match=r"unknown classifier 'nope'; known: default, .*CHATLENS_CLASSIFIERS"
    ):
        produce_input(settings, path, "r", redis_url=redis_url)
    assert redis.Redis.from_url(redis_url).dbsize() == 0
