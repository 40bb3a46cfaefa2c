"""Helpers the tests share: running `chatlens` in its own process, where the data lives, messages
stored as the producer stores them, and reading a /metrics page."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
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


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Seconds until `condition()` holds, polled every 0.2 s; AssertionError naming `what` after `timeout`."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)
    return time.monotonic() - started


def kill_group(proc: subprocess.Popen) -> None:
    """kill -9 the process group of `proc` (started with start_new_session=True), if it still runs."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
