"""Helpers the tests share: running `chatlens` in its own process, where the data lives, messages
stored as the producer stores them, and reading a /metrics page."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from chatlens.core.message_stats import MessageStats
from chatlens.core.schemas import Message
from chatlens.core.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
# ../shared/data beside the checkout: read-only data for tests that need the real corpus.
SHARED_DATA = ROOT.parent / "shared" / "data"
SAMPLE_DATA = SHARED_DATA / "topical-chat-sample"
SEED_RESULTS = SHARED_DATA / "seed-results"


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, **extra}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def chatlens_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "chatlens.cli.app", *args]


def run_chatlens(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`chatlens ARGS` in its own process, as a user runs it; stdout and stderr captured as text."""
    return subprocess.run(chatlens_cmd(*args), env=env, capture_output=True, text=True, timeout=timeout)


def store_messages(store: RunStore, run: str, messages: Iterable[Message]) -> None:
    """Messages stored as the producer's `BatchWriter` stores them: `RunStore.add_new_messages`, with
    their share of the run's stats."""
    stats = MessageStats()
    per_conversation: Counter[str] = Counter()
    encoded: dict[str, str] = {}
    for m in messages:
        stats.add(m.id, m.label)
        per_conversation[m.conversation_id] += 1
        encoded[m.id] = m.model_dump_json()
    with store.redis.pipeline() as pipe:
        store.add_new_messages(pipe, run, encoded, stats, per_conversation)
        pipe.execute()


def metric_sample(text: str, name: str, labels: str = "") -> float:
    """The value of series `name{labels}` in a Prometheus /metrics page."""
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{labels} not in /metrics"
    return float(match.group(1))
