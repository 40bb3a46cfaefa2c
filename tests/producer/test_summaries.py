"""Summary jobs, turns in position order, enqueued by `produce` and `summarise`: several conversations per
job for the extractive backend, one per job for a generative one."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from rq import Queue
from rq.serializers import JSONSerializer
from typer.testing import CliRunner

from chatlens.cli.app import app
from chatlens.core.connection import FAKE_URL, connect
from chatlens.core.queues import SUMMARISE_JOB, SUMMARISE_MANY_JOB
from chatlens.core.schemas import Conversation, Message
from chatlens.core.settings import Settings, get_settings
from chatlens.core.store import RunStore
from producer.summaries import conversations, summary_jobs

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


def queued(url: str, backend: str = "extractive") -> list[list[Conversation]]:
    """The conversations of each job on the backend's queue, checking each job's function for the backend."""
    jobs = Queue(f"summarise-{backend}", connection=connect(url), serializer=JSONSerializer).get_jobs()
    assert all(job.kwargs["backend"] == backend for job in jobs)
    if backend == "extractive":
        assert all(job.func_name == SUMMARISE_MANY_JOB for job in jobs)
        return [[Conversation.model_validate(c) for c in job.kwargs["conversations"]] for job in jobs]
    assert all(job.func_name == SUMMARISE_JOB for job in jobs)
    return [[Conversation.model_validate(job.kwargs["conversation"])] for job in jobs]


def queued_conversations(url: str, backend: str = "extractive") -> list[Conversation]:
    return [c for job in queued(url, backend) for c in job]


def test_conversations_keep_position_order() -> None:
    messages = [
        Message(id=f"m{i}", conversation_id=cid, position=pos, text=f"{cid}{pos}")
        for i, (cid, pos) in enumerate([("x", 2), ("y", 0), ("x", 0), ("x", 1)])
    ]
    assert [(c.conversation_id, c.turns) for c in conversations("r", messages)] == [
        ("x", ["x0", "x1", "x2"]),
        ("y", ["y0"]),
    ]


def test_produce_packs_the_conversations_into_one_extractive_job(tmp_path: Path, fake: str) -> None:
    result = runner.invoke(app, ["produce", str(write_csv(tmp_path / "m.csv", ROWS)), "--run", "s"])
    assert result.exit_code == 0, result.output
    assert "conversations-to-summarise 2" in result.output
    [job] = queued(fake)
    assert {c.conversation_id: c.turns for c in job} == {
        "a": ["first turn of a", "second turn of a", "third turn of a"],
        "b": ["first turn of b", "second turn of b"],
    }


def test_extractive_jobs_carry_at_most_summary_job_conversations(
    tmp_path: Path, fake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATLENS_SUMMARY_JOB_CONVERSATIONS", "2")
    rows = [*ROWS, ("c", "only turn of c", "Sad")]
    result = runner.invoke(app, ["produce", str(write_csv(tmp_path / "m.csv", rows)), "--run", "s"])
    assert result.exit_code == 0, result.output
    assert "conversations-to-summarise 3" in result.output  # conversations, not the 2 jobs
    assert [[c.conversation_id for c in job] for job in queued(fake)] == [["a", "b"], ["c"]]
    again = runner.invoke(app, ["summarise", "--run", "s"])
    assert again.exit_code == 0, again.output
    assert "enqueued 3 conversations on summarise-extractive" in again.output
    assert [len(job) for job in queued(fake)] == [2, 1, 2, 1]


def test_summary_jobs_chunk_only_a_batched_backend() -> None:
    items = [Conversation(run="r", conversation_id=f"c{i}", turns=[f"turn {i}"]) for i in range(3)]
    settings = Settings(summary_job_conversations=2)
    packed = summary_jobs(settings, items, "extractive")
    assert [job.func for job in packed] == [SUMMARISE_MANY_JOB, SUMMARISE_MANY_JOB]
    assert [[c["conversation_id"] for c in job.kwargs["conversations"]] for job in packed] == [
        ["c0", "c1"],
        ["c2"],
    ]
    assert packed[0].kwargs["backend"] == "extractive"
    assert packed[0].description == "summarise (extractive) 2 conversations of run r"
    assert packed[0].retry is not None and packed[0].timeout == settings.job_timeout_s
    # A generative backend takes minutes per conversation: one per job, whatever the setting says.
    single = summary_jobs(settings, items, "llamacpp")
    assert [job.func for job in single] == [SUMMARISE_JOB] * 3
    assert [job.kwargs["conversation"]["conversation_id"] for job in single] == ["c0", "c1", "c2"]
    assert single[1].description == "summarise (llamacpp) conversation c1 of run r"


def test_reproduce_summarises_only_conversations_that_grew(tmp_path: Path, fake: str) -> None:
    runner.invoke(app, ["produce", str(write_csv(tmp_path / "m.csv", ROWS)), "--run", "s"])
    connect(fake).delete("rq:queue:summarise-extractive")
    again = runner.invoke(app, ["produce", str(tmp_path / "m.csv"), "--run", "s"])
    assert "conversations-to-summarise 0" in again.output and queued_conversations(fake) == []

    grown = write_csv(tmp_path / "more.csv", [*ROWS, ("b", "third turn of b", "Happy")])
    runner.invoke(app, ["produce", str(grown), "--run", "s"])
    [job] = queued_conversations(fake)
    assert job.conversation_id == "b" and job.turns == [
        "first turn of b",
        "second turn of b",
        "third turn of b",
    ]  # the stored turns are included, not only the new one


def test_summaries_can_be_turned_off(tmp_path: Path, fake: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATLENS_SUMMARISE", "false")
    result = runner.invoke(app, ["produce", str(write_csv(tmp_path / "m.csv", ROWS)), "--run", "s"])
    assert result.exit_code == 0 and queued_conversations(fake) == []


def test_backend_setting_picks_the_queue(tmp_path: Path, fake: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATLENS_SUMMARY_BACKEND", "mlx")
    runner.invoke(app, ["produce", str(write_csv(tmp_path / "m.csv", ROWS)), "--run", "s"])
    assert [len(job) for job in queued(fake, "mlx")] == [1, 1] and queued(fake) == []


def test_a_generative_backend_gets_one_conversation_per_job(tmp_path: Path, fake: str) -> None:
    path = write_csv(tmp_path / "m.csv", ROWS)
    result = runner.invoke(app, ["summarise", str(path), "--run", "s", "--backend", "llamacpp"])
    assert result.exit_code == 0, result.output
    assert "enqueued 2 conversations on summarise-llamacpp" in result.output
    assert [[c.conversation_id for c in job] for job in queued(fake, "llamacpp")] == [["a"], ["b"]]


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
    assert [len(job) for job in queued(fake, "transformers")] == [1, 1]
    # The file's messages were stored, so the run can be re-summarised without it; nothing was classified.
    assert Queue("classify-default", connection=connect(fake), serializer=JSONSerializer).count == 0
    again = runner.invoke(app, ["summarise", "--run", "s"])
    assert again.exit_code == 0, again.output
    assert {c.conversation_id for c in queued_conversations(fake)} == {"a", "b"}


def test_summarise_unknown_run_is_one_line(fake: str) -> None:
    result = runner.invoke(app, ["summarise", "--run", "nope"])
    assert result.exit_code == 2 and "no run named 'nope'" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_summarise_reads_a_file_as_produce_does(tmp_path: Path, fake: str) -> None:
    """The same checks and the same rows: a bad file is the same one line; stdin is the file."""
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    refused = runner.invoke(app, ["summarise", str(empty), "--run", "s"])
    assert refused.exit_code == 2 and refused.output.strip().splitlines() == [
        f"error: {empty}: the input is empty; give a header row and at least one message"
    ]
    assert connect(fake).keys("*") == []
    path = write_csv(tmp_path / "m.csv", ROWS)
    result = runner.invoke(app, ["summarise", "-", "--run", "s"], input=path.read_bytes())
    assert result.exit_code == 0, result.output
    assert "read 5 / " in result.output and "(0 batches)" in result.output  # stored, not classified
    assert {c.conversation_id: len(c.turns) for c in queued_conversations(fake)} == {"a": 3, "b": 2}


def test_the_run_records_whether_it_expects_summaries(
    tmp_path: Path, fake: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = RunStore(connect(fake), Settings().result_ttl_s)
    monkeypatch.setenv("CHATLENS_SUMMARISE", "false")
    get_settings.cache_clear()
    off = runner.invoke(app, ["produce", str(write_csv(tmp_path / "m.csv", ROWS)), "--run", "off"])
    assert off.exit_code == 0, off.output
    assert store.run_info("off").summaries is False  # `chatlens status` expects none
    later = runner.invoke(app, ["summarise", "--run", "off"])
    assert later.exit_code == 0, later.output
    assert store.run_info("off").summaries is True  # asked for afterwards: expected from now on
    monkeypatch.setenv("CHATLENS_SUMMARISE", "true")
    get_settings.cache_clear()
    on = runner.invoke(app, ["produce", str(write_csv(tmp_path / "n.csv", ROWS)), "--run", "on"])
    assert on.exit_code == 0 and store.run_info("on").summaries is True
