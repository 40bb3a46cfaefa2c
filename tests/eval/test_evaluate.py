"""`chatlens eval` on a run written by hand: metrics.json, report.md, PNGs and one MLflow run per model."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from chatlens.cli.app import app
from chatlens.core.connection import FAKE_URL, connect
from chatlens.core.schemas import Message, MessageError, Prediction, RunInfo, Summary, SummaryError
from chatlens.core.settings import get_settings
from chatlens.core.store import RunStore
from tests.helpers import store_messages

runner = CliRunner()


def prediction(mid: str, model: str, label: str) -> Prediction:
    return Prediction(
        message_id=mid,
        model=model,
        model_version=f"{model}-v1",
        label=label,
        confidence=0.9,
        batch_size=3,
        batch_latency_ms=1.0,
        worker="test",
    )


@pytest.fixture
def run_in_redis() -> str:
    connection = connect(FAKE_URL)
    connection.flushall()
    store = RunStore(connection, 3600)
    truth = {"a": "Happy", "b": "Sad", "c": "Happy", "d": None}
    store_messages(
        store,
        "r",
        [
            Message(id=k, conversation_id="1", position=i, text=k, label=v)
            for i, (k, v) in enumerate(truth.items())
        ],
    )
    store.save_run_info(
        RunInfo(run="r", source="test", dataset_hash="abc", messages=4, labelled=3, classifiers=["default"])
    )
    store.write_results("r", "good", [prediction(k, "good", v or "Neutral") for k, v in truth.items()], [])
    store.write_results(
        "r",
        "poor",
        [prediction("a", "poor", "Sad"), prediction("b", "poor", "Sad")],
        [MessageError(message_id="c", model="poor", error="boom")],
    )
    return "r"


def test_eval_writes_metrics_report_pngs_and_mlflow(tmp_path: Path, run_in_redis: str) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["eval", "--run", run_in_redis, "--out", str(out), "--redis-url", FAKE_URL])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["run"] == "r" and metrics["messages"] == 4
    good, poor = metrics["models"]["good"], metrics["models"]["poor"]
    assert (good["accuracy"], good["macro_f1"], good["n"], good["coverage"]) == (1.0, 1.0, 3, 1.0)
    assert (poor["accuracy"], poor["n"], poor["coverage"], poor["errors"]) == (0.5, 2, 0.5, 1)
    assert poor["labels"] == ["Happy", "Sad"] and poor["confusion_matrix"] == [[0, 1], [0, 1]]
    report = (out / "report.md").read_text()
    assert "| good | 1.000 | 1.000 |" in report and "| poor | 0.500 |" in report
    assert "good P | good R | good F1 | poor P | poor R | poor F1" in report
    for model in ("good", "poor"):
        assert (out / f"confusion_{model}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    mlflow.set_tracking_uri(get_settings().mlflow_tracking_uri)
    runs = mlflow.search_runs(experiment_names=["chatlens-eval"], output_format="list")
    assert sorted(r.info.run_name for r in runs) == ["r/good", "r/poor"]
    poor_run = next(r for r in runs if r.info.run_name == "r/poor")
    assert poor_run.data.params["dataset_hash"] == "abc"
    assert poor_run.data.params["model_version"] == "poor-v1"
    assert poor_run.data.metrics["accuracy"] == 0.5
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(poor_run.info.run_id)}
    assert artifacts == {"metrics.json", "report.md", "confusion_poor.png"}


def test_results_export(tmp_path: Path, run_in_redis: str) -> None:
    out = tmp_path / "r.jsonl"
    result = runner.invoke(
        app, ["results", "--run", "r", "--format", "jsonl", "--output", str(out), "--redis-url", FAKE_URL]
    )
    assert result.exit_code == 0, result.output
    records = {r["message_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert sorted(records) == ["a", "b", "c", "d"]
    assert records["a"]["predictions"] == {
        "good": {"label": "Happy", "confidence": 0.9, "model_version": "good-v1"},
        "poor": {"label": "Sad", "confidence": 0.9, "model_version": "poor-v1"},
    }
    assert list(records["c"]["predictions"]) == ["good"]  # poor failed on c: absent, not invented
    csv_out = tmp_path / "r.csv"
    runner.invoke(app, ["results", "--run", "r", "--output", str(csv_out), "--redis-url", FAKE_URL])
    header = csv_out.read_text().splitlines()[0]
    assert header == (
        "message_id,conversation_id,position,message,label,good.label,good.confidence,good.model_version,"
        "poor.label,poor.confidence,poor.model_version"
    )


def test_unknown_run_is_a_user_error(tmp_path: Path) -> None:
    connect(FAKE_URL).flushall()
    result = runner.invoke(app, ["eval", "--run", "nope", "--redis-url", FAKE_URL])
    assert result.exit_code == 2
    assert "no run named 'nope'" in result.output and "Traceback" not in result.output


def test_report_counts_the_summaries_without_references(tmp_path: Path, run_in_redis: str) -> None:
    store = RunStore(connect(FAKE_URL), get_settings().result_ttl_s)
    text = "one two three four"
    written = Summary(conversation_id="1", backend="extractive", model_id="m", text=text, turns=4,
                      input_tokens=1, output_tokens=1, calls=1, latency_ms=1, worker="w")  # fmt: skip
    store.write_summary(run_in_redis, written)
    failed = SummaryError(conversation_id="2", backend="extractive", error="x")
    store.write_summary_error(run_in_redis, failed)
    assert get_settings().summary_references is None
    out = tmp_path / "out"
    result = runner.invoke(app, ["eval", "--run", run_in_redis, "--out", str(out), "--redis-url", FAKE_URL])
    assert result.exit_code == 0, result.output
    counts = json.loads((out / "metrics.json").read_text())["summary_counts"]
    assert counts == {"written": 1, "errors": 1, "conversations": 1, "mean_words": 4.0}
    report = (out / "report.md").read_text()
    assert "## Summaries written" in report and "| 1 | 1 | 1 | 4.0 |" in report
