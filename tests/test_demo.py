"""The embedded default: `chatlens demo` with no Redis and no download."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chatlens.cli.app import app

# A real model, a subprocess or a real redis-server: the full suite only, not `make test-fast`.
pytestmark = pytest.mark.slow


def test_demo_runs_the_whole_path_in_process(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    assert "in-process Redis (fakeredis)" in result.output
    assert "enqueued 95" in result.output
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert metrics["models"]["default"]["coverage"] == 1.0
    assert "# chatlens evaluation: run `demo`" in result.output
    assert "Conversation summaries (extractive, 12 conversations)" in result.output
    lines = (tmp_path / "demo" / "summaries.jsonl").read_text().splitlines()
    assert len(lines) == 12 and all(json.loads(line)["text"] for line in lines)
