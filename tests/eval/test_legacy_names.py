"""Runs written before models were named by their registry keys: an old worker stored the default
classifier's results under `minilm-head` (and `mpnet-head`, `emotion-go`, `zeroshot-nli`, `minilm-ft`).
`chatlens eval`, `results` and `status` read them under the key, alone or beside results a new worker
wrote to the same run, and tonight's figures compare with an evaluation recorded under the old name."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chatlens.cli.app import app
from chatlens.core import keys
from chatlens.core.connection import FAKE_URL, connect
from chatlens.core.schemas import Message, Prediction, RunInfo
from chatlens.core.settings import get_settings
from chatlens.core.store import RunStore
from chatlens.ops.status import gather_status

runner = CliRunner()
TRUTH = {"a": "Happy", "b": "Sad", "c": "Happy", "d": "Sad"}
OLD_VERSION = "sentence-transformers/all-MiniLM-L6-v2+head-0123456789ab"


def record(message_id: str, model: str, label: str, version: str = OLD_VERSION) -> str:
    """A Prediction's JSON as a worker wrote it, under the model name it stored it as."""
    return json.dumps(
        {
            "message_id": message_id, "model": model, "model_version": version, "label": label,
            "confidence": 0.9, "batch_size": 4, "batch_latency_ms": 1.0, "worker": "old-host:1",
            "created_at": "2025-01-01T00:00:00Z",
        }
    )  # fmt: skip


@pytest.fixture
def old_run() -> RunStore:
    """The run `old` as the previous release left it in Redis, key for key (raw commands, not our
    writers, so the layout is the old one whatever the store does today)."""
    connection = connect(FAKE_URL)
    connection.flushall()
    messages = {
        mid: Message(id=mid, conversation_id="1", position=i, text=mid, label=label).model_dump_json()
        for i, (mid, label) in enumerate(TRUTH.items())
    }
    connection.hset("chatlens:run:old:messages", mapping=messages)
    store = RunStore(connection, 3600)
    store.save_run_info(
        RunInfo(
            run="old",
            source="t",
            dataset_hash="h",
            messages=4,
            labelled=4,
            classifiers=["default", "emotion"],
        )
    )
    old = {"a": "Happy", "b": "Happy", "c": "Happy"}
    connection.hset(
        "chatlens:run:old:results:minilm-head",
        mapping={m: record(m, "minilm-head", v) for m, v in old.items()},
    )
    error = {
        "message_id": "d",
        "model": "minilm-head",
        "error": "ValueError: x",
        "created_at": "2025-01-01T00:00:00Z",
    }
    connection.hset("chatlens:run:old:errors:minilm-head", "d", json.dumps(error))
    connection.hset(
        "chatlens:run:old:results:emotion-go",
        mapping={
            m: record(m, "emotion-go", v, "SamLowe/roberta-base-go_emotions@abc") for m, v in TRUTH.items()
        },
    )
    connection.sadd("chatlens:run:old:models", "minilm-head", "emotion-go")
    # The evaluation the old `chatlens eval` recorded: perfect figures under the old name.
    earlier = {"run": "old", "out_dir": "reports/old/1", "evaluated_at": "2025-01-01T00:00:00Z",
               "models": {"minilm-head": {"accuracy": 1.0, "macro_f1": 1.0}}}  # fmt: skip
    connection.lpush(keys.eval_history("old"), json.dumps(earlier))
    connection.set(keys.last_eval("old"), json.dumps(earlier))
    return store


def test_an_old_run_reads_under_the_registry_keys(old_run: RunStore, tmp_path: Path) -> None:
    assert old_run.models("old") == ["default", "emotion"]
    (row,) = gather_status(old_run.redis, get_settings(), run="old")["runs"]
    assert row["models"] == {
        "default": {"done": 3, "errors": 1, "total": 4},
        "emotion": {"done": 4, "errors": 0, "total": 4},
    }
    assert row["finished"] and row["last_eval"]["models"] == {"default": {"accuracy": 1.0, "macro_f1": 1.0}}

    out = tmp_path / "report"
    result = runner.invoke(
        app, ["eval", "--run", "old", "--no-mlflow", "--out", str(out), "--redis-url", FAKE_URL]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["models"]) == ["default", "emotion"]
    default = metrics["models"]["default"]
    assert (default["n"], default["coverage"], default["errors"], default["accuracy"]) == (3, 0.75, 1, 0.6667)
    assert default["model_versions"] == [OLD_VERSION]
    report = (out / "report.md").read_text()
    assert "| default | 0.667 |" in report and "minilm-head" not in report
    assert sorted(p.name for p in out.glob("confusion_*.png")) == [
        "confusion_default.png",
        "confusion_emotion.png",
    ]
    # Compared with the evaluation recorded under the old name, as one model.
    assert metrics["regressions"][0].startswith("model default accuracy 1.000 -> 0.667")

    exported = tmp_path / "r.csv"
    result = runner.invoke(
        app, ["results", "--run", "old", "--output", str(exported), "--redis-url", FAKE_URL]
    )
    assert result.exit_code == 0, result.output
    with exported.open() as handle:
        rows = {r["message_id"]: r for r in csv.DictReader(handle)}
    assert rows["a"]["default.label"] == "Happy" and rows["a"]["emotion.label"] == "Happy"
    assert rows["d"]["default.label"] == "" and rows["d"]["emotion.label"] == "Sad"


def test_a_run_written_across_the_upgrade_is_one_model(old_run: RunStore, tmp_path: Path) -> None:
    """A new worker goes on with the same run: it classifies `d`, whose old error goes (as a later result
    clears an error under one name), and `b` again, whose newer record wins (as a retry's would)."""
    new = "sentence-transformers/all-MiniLM-L6-v2+head-fedcba987654"
    predictions = [Prediction.model_validate_json(record(m, "default", "Sad", new)) for m in ("b", "d")]
    old_run.write_results("old", "default", predictions, [])
    assert old_run.models("old") == ["default", "emotion"]
    assert (old_run.result_count("old", "default"), old_run.error_count("old", "default")) == (4, 0)
    assert {m: p.model_version for m, p in old_run.predictions("old", "default").items()} == {
        "a": OLD_VERSION, "b": new, "c": OLD_VERSION, "d": new,
    }  # fmt: skip
    assert old_run.errors("old", "default") == {}
    assert old_run.predictions_by_id("old", "default", ["a", "b"])["b"].model_version == new

    out = tmp_path / "report"
    result = runner.invoke(
        app, ["eval", "--run", "old", "--no-mlflow", "--out", str(out), "--redis-url", FAKE_URL]
    )
    assert result.exit_code == 0, result.output
    default = json.loads((out / "metrics.json").read_text())["models"]["default"]
    # a Happy (right), b Sad (right, the newer record), c Happy (right), d Sad (right).
    assert (default["n"], default["coverage"], default["errors"], default["accuracy"]) == (4, 1.0, 0, 1.0)
    assert default["model_versions"] == sorted([OLD_VERSION, new])
    (row,) = gather_status(old_run.redis, get_settings(), run="old")["runs"]
    assert row["models"]["default"] == {"done": 4, "errors": 0, "total": 4} and row["finished"]
