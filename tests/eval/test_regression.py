"""The nightly job flags a regression where the second night's results are worse, and does not pile up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from chatlens.core import keys
from chatlens.core.context import JobContext
from chatlens.core.schemas import LastEval, Message, Prediction, RunInfo
from chatlens.core.settings import get_settings
from chatlens.core.store import RunStore
from eval.jobs import evaluate_latest_run
from eval.regression import compare
from eval.tracking import quiet_mlflow
from eval.trend import plot_trend
from tests.helpers import store_messages

pytestmark = pytest.mark.slow

TRUTH = {"m1": "Happy", "m2": "Sad", "m3": "Angry", "m4": "Happy"}


def predict(store: RunStore, labels: dict[str, str]) -> None:
    store.write_results(
        "nightly",
        "m",
        [
            Prediction(
                message_id=mid,
                model="m",
                model_version="1",
                label=label,
                confidence=0.9,
                batch_size=4,
                batch_latency_ms=1,
                worker="w",
            )
            for mid, label in labels.items()
        ],
        [],
    )


def test_second_night_worse_is_flagged_and_an_unchanged_run_is_skipped(
    redis_url: str, tmp_path: Path
) -> None:
    connection = redis.Redis.from_url(redis_url)
    settings = get_settings()
    store = RunStore(connection, 3600)
    messages = [
        Message(id=mid, conversation_id="c", position=i, text=mid, label=label)
        for i, (mid, label) in enumerate(TRUTH.items())
    ]
    store_messages(store, "nightly", messages)
    store.save_run_info(
        RunInfo(run="nightly", source="t", dataset_hash="h", messages=4, labelled=4, classifiers=["m"])
    )
    ctx = JobContext(settings, connection)

    predict(store, TRUTH)  # night 1: every message right
    first = evaluate_latest_run(ctx)
    assert first["regressions"] == []
    # Ticks missed while the eval worker was down find nothing new: one evaluation, not one per tick.
    assert "unchanged" in evaluate_latest_run(ctx)["skipped"]
    assert "unchanged" in evaluate_latest_run(ctx)["skipped"]

    predict(store, {"m2": "Happy", "m3": "Happy"})  # night 2: two of four wrong
    second = evaluate_latest_run(ctx)
    assert any(line.startswith("model m macro_f1 1.000 -> ") for line in second["regressions"])
    assert any("accuracy 1.000 -> 0.500" in line for line in second["regressions"])
    assert any("recall:Sad 1.000 -> 0.000" in line for line in second["regressions"])

    out_dir = Path(second["out_dir"])
    assert "**REGRESSION**" in (out_dir / "report.md").read_text()
    assert json.loads((out_dir / "metrics.json").read_text())["regressions"] == second["regressions"]
    assert (out_dir / "trend.png").stat().st_size > 1000
    record = LastEval.model_validate_json(connection.get(keys.last_eval("nightly")))
    assert record.regression and record.regressions == second["regressions"]
    assert connection.llen(keys.eval_history("nightly")) == 2

    mlflow = quiet_mlflow()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    (run_id,) = record.mlflow_run_ids
    tracked = mlflow.MlflowClient().get_run(run_id)
    assert tracked.data.tags["regression"] == "true" and tracked.data.metrics["regression"] == 1.0
    first_run = mlflow.MlflowClient().get_run(
        LastEval.model_validate_json(connection.lindex(keys.eval_history("nightly"), 1)).mlflow_run_ids[0]
    )
    assert first_run.data.tags["regression"] == "false"  # the first night had nothing to compare with


def test_a_drop_within_the_threshold_is_not_flagged() -> None:
    settings = get_settings().model_copy(update={"regression_macro_f1_drop": 0.05})
    before = LastEval(run="r", out_dir="x", models={"m": {"macro_f1": 0.80, "accuracy": 0.8}})
    small = LastEval(run="r", out_dir="y", models={"m": {"macro_f1": 0.76, "accuracy": 0.8}})
    big = LastEval(run="r", out_dir="y", models={"m": {"macro_f1": 0.70, "accuracy": 0.8}})
    assert compare(before, small, settings) == []
    assert compare(before, big, settings) == ["model m macro_f1 0.800 -> 0.700 (-0.100, threshold 0.050)"]


def test_the_trend_needs_two_evaluations_and_says_so(tmp_path: Path) -> None:
    one = LastEval(run="r", out_dir="x", models={"m": {"macro_f1": 0.8, "accuracy": 0.8}})
    two = LastEval(run="r", out_dir="y", models={"m": {"macro_f1": 0.7, "accuracy": 0.7}})
    assert plot_trend(tmp_path / "one.png", [one]) is False
    assert (tmp_path / "one.png").read_bytes()[:4] == b"\x89PNG"
    assert plot_trend(tmp_path / "two.png", [one, two]) is True
