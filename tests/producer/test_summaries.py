"""Summary jobs: one per conversation, turns in position order, enqueued by `produce` and `summarise`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from rq import Queue
from rq.serializers import JSONSerializer
from typer.testing import CliRunner

from chatlens.cli.app import app
from chatlens.core.connection import FAKE_URL, connect
from chatlens.core.queues import SUMMARISE_JOB
from chatlens.core.schemas import Conversation, Message
from producer.summaries import conversations

runner = CliRunner()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> str:
    connect(FAKE_URL).flushall()
    monkeypatch.setenv("CHATLENS_REDIS_URL", FAKE_URL)
    return FAKE_URL


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    pd.DataFrame(rows, columns=["conversation_id", "message", "sentiment"]).to_csv(path, index=False)
    return path


ROWS = [
    ("a", "first turn of a", "Neutral"),
    ("b", "first turn of b", "Happy"),
    ("a", "second turn of a", "Neutral"),
    ("a", "third turn of a", "Sad"),
    ("b", "second turn of b", "Happy"),
]


def summary_jobs(url: str, backend: str = "extractive") -> list[Conversation]:
    queue = Queue(f"summarise-{backend}", connection=connect(url), serializer=JSONSerializer)
    jobs = queue.get_jobs()
    assert all(job.func_name == SUMMARISE_JOB and job.kwargs["backend"] == backend for job in jobs)
    return [Conversation.model_validate(job.kwargs["conversation"]) for job in jobs]


def test_conversations_keep_position_order() -> None:
    messages = [
        Message(id=f"m{i}", conversation_id=cid, position=pos, text=f"{cid}{pos}")
        for i, (cid, pos) in enumerate([("x", 2), ("y", 0), ("x", 0), ("x", 1)])
    ]
    assert [(c.conversation_id, c.turns) for c in conversations("r", messages)] == [
        ("x", ["x0", "x1", "x2"]),
        ("y", ["y0"]),
    ]


def test_produce_enqueues_one_summary_job_per_conversation(tmp_path: Path, fake: str) -> None:
    result = runner.invoke(app, ["produce", str(write_csv(tmp_path / "m.csv", ROWS)), "--run", "s"])
    assert result.exit_code == 0, result.output
    assert "conversations-to-summarise 2" in result.output
    jobs = {c.conversation_id: c.turns for c in summary_jobs(fake)}
    assert jobs == {
        "a": ["first turn of a", "second turn of a", "third turn of a"],
        "b": ["first turn of b", "second turn of b"],
    }


def test_reproduce_summarises_only_conversations_that_grew(tmp_path: Path, fake: str) -> None:
    runner.invoke(app, ["produce", str(write_csv(tmp_path / "m.csv", ROWS)), "--run", "s"])
    connect(fake).delete("rq:queue:summarise-extractive")
    again = runner.invoke(app, ["produce", str(tmp_path / "m.csv"), "--run", "s"])
    assert "conversations-to-summarise 0" in again.output and summary_jobs(fake) == []

    grown = write_csv(tmp_path / "more.csv", [*ROWS, ("b", "third turn of b", "Happy")])
    runner.invoke(app, ["produce", str(grown), "--run", "s"])
    [job] = summary_jobs(fake)
    assert job.conversation_id == "b" and job.turns == [
        "first turn of b",
        "second turn of b",
        "third turn of b",
    ]  # the stored turns are included, not only the new one


def test_summaries_can_be_turned_off(tmp_path: Path, fake: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATLENS_SUMMARISE", "false")
    result = runner.invoke(app, ["produce", str(write_csv(tmp_path / "m.csv", ROWS)), "--run", "s"])
    assert result.exit_code == 0 and summary_jobs(fake) == []


def test_backend_setting_picks_the_queue(tmp_path: Path, fake: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATLENS_SUMMARY_BACKEND", "mlx")
    runner.invoke(app, ["produce", str(write_csv(tmp_path / "m.csv", ROWS)), "--run", "s"])
    assert len(summary_jobs(fake, "mlx")) == 2 and summary_jobs(fake) == []


def test_unknown_backend_setting_is_one_line(
    tmp_path: Path, fake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATLENS_SUMMARY_BACKEND", "gpt")
    result = runner.invoke(app, ["produce", str(write_csv(tmp_path / "m.csv", ROWS)), "--run", "s"])
    assert result.exit_code == 2
    assert "CHATLENS_SUMMARY_BACKEND" in result.output and len(result.output.strip().splitlines()) == 1


def test_summarise_a_file_and_then_the_run(tmp_path: Path, fake: str) -> None:
    result = runner.invoke(
        app,
        ["summarise", str(write_csv(tmp_path / "m.csv", ROWS)), "--run", "s", "--backend", "transformers"],
    )
    assert result.exit_code == 0, result.output
    assert "enqueued 2 conversations on summarise-transformers" in result.output
    assert len(summary_jobs(fake, "transformers")) == 2
    # The file's messages were stored, so the run can be re-summarised without it; nothing was classified.
    assert Queue("classify-default", connection=connect(fake), serializer=JSONSerializer).count == 0
    again = runner.invoke(app, ["summarise", "--run", "s"])
    assert again.exit_code == 0, again.output
    assert {c.conversation_id for c in summary_jobs(fake)} == {"a", "b"}


def test_summarise_unknown_run_is_one_line(fake: str) -> None:
    result = runner.invoke(app, ["summarise", "--run", "nope"])
    assert result.exit_code == 2 and "no run named 'nope'" in result.output
    assert len(result.output.strip().splitlines()) == 1
