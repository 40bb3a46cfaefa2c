"""A re-run re-sends for classification only the stored messages no job will answer: none while their
jobs are queued, the lost ones once jobs are lost, and none of a failed job's (those are requeued). The
resume command an outage prints."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
from rq import Queue
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer
from typer.testing import CliRunner

from chatlens.cli.app import app
from chatlens.core import keys
from chatlens.core.connection import FAKE_URL, connect
from chatlens.core.schemas import Prediction
from chatlens.core.store import RunStore
from producer.outage import resume_command

runner = CliRunner()
ROWS = [("a", f"turn {i} of a", "Neutral") for i in range(5)] + [("b", "only turn of b", "Happy")]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> str:
    connect(FAKE_URL).flushall()
    monkeypatch.setenv("CHATLENS_REDIS_URL", FAKE_URL)
    monkeypatch.setenv("CHATLENS_SUMMARISE", "false")
    monkeypatch.setenv("CHATLENS_BATCH_SIZE", "2")
    return FAKE_URL


def queue() -> Queue:
    return Queue("classify-default", connection=connect(FAKE_URL), serializer=JSONSerializer)


def queued_ids() -> list[str]:
    return sorted(item["id"] for job in queue().get_jobs() for item in job.kwargs["batch"]["items"])


def produce(path: Path) -> str:
    result = runner.invoke(app, ["produce", str(path), "--run", "r"])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_rerun_resends_what_no_job_will_classify(tmp_path: Path, fake: str) -> None:
    path = tmp_path / "m.csv"
    pd.DataFrame(ROWS, columns=["conversation_id", "message", "sentiment"]).to_csv(path, index=False)
    produce(path)
    stored = sorted(k.decode() for k in connect(fake).hkeys(keys.messages("r")))
    assert queued_ids() == stored

    # Workers still draining: every message's job is queued, nothing is sent twice.
    assert "messages for classification 0 for default" in produce(path)
    assert queued_ids() == stored

    # The jobs are lost; two messages have results, one job of two messages failed for good.
    jobs = queue().get_jobs()
    failed = jobs[0]
    connect(fake).delete(queue().key)
    FailedJobRegistry(queue=queue()).add(failed, exc_string="boom")
    in_failed = {item["id"] for item in failed.kwargs["batch"]["items"]}
    answered = [m for m in stored if m not in in_failed][:2]
    RunStore(connect(fake), 3600).write_results(
        "r",
        "default",
        [
            Prediction(
                message_id=m,
                model="default",
                model_version="1",
                label="Neutral",
                confidence=1.0,
                batch_size=2,
                batch_latency_ms=1.0,
                worker="w",
            )
            for m in answered
        ],
        [],
    )
    output = produce(path)
    assert "messages for classification 2 for default" in output, output
    assert "2 left in failed jobs" in output
    assert queued_ids() == sorted(set(stored) - in_failed - set(answered))


def test_the_resume_command_is_the_command_typed_with_the_password_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "redis://user:pa%24s@cache:6380/2"
    typed = ["chatlens", "produce", "-", "--run", "live", "--redis-url", url, "--flush-ms", "50"]
    monkeypatch.setattr(sys, "argv", typed)
    line = resume_command("stdin", "live", url, stdin=True)
    assert line == (
        "<the same input> | chatlens produce - --run live --redis-url "
        "redis://user:***@cache:6380/2 --flush-ms 50"
    )
    monkeypatch.setattr(sys, "argv", ["pytest"])  # called as a library: the command it stands for
    assert resume_command("chat.csv", "first", url, stdin=False) == "chatlens produce chat.csv --run first"
