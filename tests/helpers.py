"""Helpers the tests share: running `chatlens` in its own process, and where the data lives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
