"""Corrupt records found in Redis by `chatlens eval` / `chatlens results`: each is counted and reported as
an error for its message (or model), never a crash of the whole command."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chatlens.cli.app import app
from chatlens.core import keys
from chatlens.core.connection import FAKE_URL, connect
from chatlens.core.schemas import Message, Prediction, RunInfo, Summary
from chatlens.core.store import RunStore
from tests.helpers import store_messages

runner = CliRunner()
TRUTH = {"a": "Happy", "b": "Sad", "c": "Happy", "d": "Sad"}


def prediction(mid: str, label: str) -> Prediction:
    return Prediction(
        message_id=mid,
        model="m",
        model_version="m-v1",
        label=label,
        confidence=0.9,
        batch_size=4,
        batch_latency_ms=1.0,
        worker="test",
    )


@pytest.fixture
def store() -> RunStore:
    connection = connect(FAKE_URL)
    connection.flushall()
    store = RunStore(connection, 3600)
    messages = [
        Message(id=k, conversation_id="1", position=i, text=k, label=v)
        for i, (k, v) in enumerate(TRUTH.items())
    ]
    store_messages(store, "r", messages)
    store.save_run_info(
        RunInfo(run="r", source="t", dataset_hash="h", messages=4, labelled=4, classifiers=["default"])
    )
    store.write_results("r", "m", [prediction(k, v) for k, v in TRUTH.items()], [])
    store.write_summary(
        "r",
        Summary(
            conversation_id="1",
            backend="extractive",
            model_id="x",
            text="a summary",
            turns=4,
            input_tokens=4,
            output_tokens=2,
            calls=1,
            latency_ms=1.0,
            worker="test",
        ),
    )
    return store


CORRUPTIONS = [
    ("message not JSON", lambda r: r.hset(keys.messages("r"), "d", b"{not json")),
    ("message wrong shape", lambda r: r.hset(keys.messages("r"), "d", json.dumps({"id": "d"}))),
    ("message not UTF-8", lambda r: r.hset(keys.messages("r"), "d", b"\xff\xfe\x00garbage")),
    ("message extra field", lambda r: r.hset(keys.messages("r"), "d", json.dumps({"id": "d", "evil": 1}))),
    ("result truncated", lambda r: r.hset(keys.results("r", "m"), "d", b'{"message_id": "d", "mod')),
    ("result wrong type", lambda r: r.hset(keys.results("r", "m"), "d", json.dumps([1, 2, 3]))),
    ("error not JSON", lambda r: r.hset(keys.errors("r", "m"), "e", b"boom")),
]


@pytest.mark.parametrize("corrupt", [c[1] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS])
def test_eval_counts_a_corrupt_entry_and_scores_the_rest(store: RunStore, tmp_path: Path, corrupt) -> None:
    corrupt(store.redis)
    result = runner.invoke(
        app, ["eval", "--run", "r", "--no-mlflow", "--out", str(tmp_path), "--redis-url", FAKE_URL]
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "1 records of this run in Redis are corrupt" in result.output
    document = json.loads((tmp_path / "metrics.json").read_text())
    assert len(document["corrupt_records"]) == 1
    bad = document["corrupt_records"][0]
    assert bad["field"] in {"d", "e"} and bad["error"]
    assert document["messages"] == 4  # a corrupt message still counts as enqueued, unscored
    model = document["models"]["m"]
    assert model["errors"] == (1 if bad["key"] != keys.messages("r") else 0)
    assert model["n"] == (3 if bad["field"] == "d" else 4)
    assert "## Corrupt records" in (tmp_path / "report.md").read_text()


def test_results_export_leaves_out_a_corrupt_message_and_says_so(store: RunStore) -> None:
    store.redis.hset(keys.messages("r"), "d", b"{not json")
    store.redis.hset(keys.results("r", "m"), "c", b"garbage")
    result = runner.invoke(app, ["results", "--run", "r", "--format", "csv", "--redis-url", FAKE_URL])
    assert result.exit_code == 0, result.output
    assert "2 records of this run in Redis are corrupt" in result.output
    assert "corrupt" in result.stderr and "corrupt" not in result.stdout
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["message_id"] for r in rows] == ["a", "b", "c"]
    assert rows[2]["m.label"] == ""  # its corrupt prediction is absent, not invented


def test_results_summaries_with_a_corrupt_summary(store: RunStore) -> None:
    store.redis.hset(keys.summaries("r"), "2", b"[]")
    result = runner.invoke(
        app, ["results", "--run", "r", "--summaries", "--format", "jsonl", "--redis-url", FAKE_URL]
    )
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["conversation_id"] for line in result.stdout.splitlines()] == ["1"]
    assert "1 records of this run in Redis are corrupt" in result.output


@pytest.mark.parametrize("command", [["eval", "--no-mlflow"], ["results"]])
def test_a_corrupt_run_info_is_one_line_exit_2(store: RunStore, command: list[str]) -> None:
    store.redis.set(keys.run_info("r"), b"\x00not json")
    result = runner.invoke(app, [*command, "--run", "r", "--redis-url", FAKE_URL])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "chatlens:run:r:info" in lines[0] and "is corrupt" in lines[0]
