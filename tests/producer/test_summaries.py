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
from chatlens.core.schemas import Conversation, Message, Summary, SummaryError
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


def summary(cid: str, turns: int) -> Summary:
    return Summary(
        conversation_id=cid, backend="extractive", model_id="m", text="s", turns=turns,
        input_tokens=1, output_tokens=1, calls=1, latency_ms=1.0, worker="w",
    )  # fmt: skip


def test_a_rerun_resends_only_the_summaries_no_job_will_write(tmp_path: Path, fake: str) -> None:
    """Re-running while the jobs are queued doubles nothing; once jobs are lost, or a summary is stale,
    the re-run sends those conversations again, with every stored turn."""
    path = write_csv(tmp_path / "m.csv", ROWS)
    runner.invoke(app, ["produce", str(path), "--run", "s"])
    still_queued = runner.invoke(app, ["produce", str(path), "--run", "s"])
    assert "conversations for a summary 0" in still_queued.output
    assert sorted(c.conversation_id for c in queued_conversations(fake)) == ["a", "b"]

    connect(fake).delete("rq:queue:summarise-extractive")  # the jobs are lost
    lost = runner.invoke(app, ["produce", str(path), "--run", "s"])
    assert "conversations for a summary 2" in lost.output, lost.output
    assert {c.conversation_id: len(c.turns) for c in queued_conversations(fake)} == {"a": 3, "b": 2}

    connect(fake).delete("rq:queue:summarise-extractive")
    store = RunStore(connect(fake), 3600)
    store.write_summary("s", summary("a", 3))  # current
    store.write_summary("s", summary("b", 1))  # written before b's second turn was stored: stale
    stale = runner.invoke(app, ["produce", str(path), "--run", "s"])
    assert "conversations for a summary 1" in stale.output
    [b] = queued_conversations(fake)
    assert b.conversation_id == "b" and b.turns == ["first turn of b", "second turn of b"]

    connect(fake).delete("rq:queue:summarise-extractive")
    store.write_summary_error("s", SummaryError(conversation_id="b", backend="extractive", error="x"))
    answered = runner.invoke(app, ["produce", str(path), "--run", "s"])  # an error is an answer
    assert "conversations for a summary 0" in answered.output and queued_conversations(fake) == []


def test_reproduce_summarises_conversations_that_grew(tmp_path: Path, fake: str) -> None:
    runner.invoke(app, ["produce", str(write_csv(tmp_path / "m.csv", ROWS)), "--run", "s"])
    connect(fake).delete("rq:queue:summarise-extractive")
    store = RunStore(connect(fake), 3600)
    store.write_summary("s", summary("a", 3))
    store.write_summary("s", summary("b", 2))
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


def test_a_conversation_another_input_stored_is_resent_with_its_turns(tmp_path: Path, fake: str) -> None:
    """The run's conversation `a` came from another file and lost its summary job: a produce of a file
    without it finds it and reads its turns from the messages hash (the scan, not ids it read)."""
    runner.invoke(app, ["produce", str(write_csv(tmp_path / "a.csv", ROWS[:4])), "--run", "s"])
    connect(fake).delete("rq:queue:summarise-extractive")
    other = write_csv(tmp_path / "c.csv", [("c", "only turn of c", "Happy")])
    result = runner.invoke(app, ["produce", str(other), "--run", "s"])
    assert "conversations for a summary 2" in result.output, result.output  # a and b; c was sent as new
    turns = {c.conversation_id: c.turns for c in queued_conversations(fake)}
    assert turns == {
        "a": ["first turn of a", "second turn of a", "third turn of a"],
        "b": ["first turn of b"],
        "c": ["only turn of c"],
    }


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
