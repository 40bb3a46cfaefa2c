"""Summary evaluation: reference files, `chatlens eval-summaries`, and scoring a run's summaries."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from chatlens.cli.app import app
from chatlens.core.errors import ChatlensError
from chatlens.core.schemas import Message, Summary
from chatlens.core.store import RunStore
from eval.summaries import load_references, score_run_summaries
from tests.helpers import store_messages

runner = CliRunner()
METRIC_KEYS = {
    *("rouge1", "rouge2", "rougeL", "rougeL_ci_low", "rougeL_ci_high"),
    *("words", "sentences", "compression", "seconds_per_conversation"),
}

CONVERSATIONS = [
    {
        "conversation_id": 1,
        "message": "Do you like jazz? I love jazz, especially Miles Davis. His trumpet playing changed "
        "music. I prefer rock though. Rock concerts are loud and fun. Have you been to one?",
        "summary": "The speakers discuss jazz and Miles Davis, and one of them prefers rock concerts.",
    },
    {
        "conversation_id": "c2",
        "message": "The weather has been awful. It rained all week here. I heard a storm is coming. "
        "I hope it passes quickly. My garden needs sun.",
        "summary": "They complain about a week of rain and an incoming storm that is bad for a garden.",
    },
]


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("not json", "not a UTF-8 JSON file"),
        ("{}", "expected a non-empty JSON list"),
        ("[]", "expected a non-empty JSON list"),
        ('[{"conversation_id": 1, "message": "hi"}]', "item 0: summary: Field required"),
    ],
)
def test_bad_reference_files_are_one_line(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "refs.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ChatlensError, match=fragment):
        load_references(path)
    result = runner.invoke(app, ["eval-summaries", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and len(result.output.splitlines()) == 1  # not even a blank line
    assert not (tmp_path / "out").exists()


def test_numeric_ids_are_read_as_text(tmp_path: Path) -> None:
    items = load_references(write_json(tmp_path / "refs.json", CONVERSATIONS))
    assert [i.conversation_id for i in items] == ["1", "c2"]


def test_unknown_backend_is_refused(tmp_path: Path) -> None:
    path = write_json(tmp_path / "refs.json", CONVERSATIONS)
    result = runner.invoke(app, ["eval-summaries", str(path), "--out", str(tmp_path), "-b", "gpt"])
    assert result.exit_code == 2 and "unknown summary backend 'gpt'" in result.output


@pytest.mark.slow
def test_eval_summaries_scores_every_available_backend(tmp_path: Path) -> None:
    path = write_json(tmp_path / "refs.json", CONVERSATIONS)
    out = tmp_path / "out"
    result = runner.invoke(app, ["eval-summaries", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    # Here only the offline default can run: bart-large-cnn is not downloadable, this is not a Mac, and
    # the Qwen GGUF was not fetched into this test's models directory.
    assert set(metrics["summaries"]) == {"extractive"}
    assert set(metrics["summaries"]["extractive"]) == METRIC_KEYS
    assert set(metrics["skipped"]) == {"transformers", "mlx", "llamacpp"}
    assert "facebook/bart-large-cnn" in metrics["skipped"]["transformers"]
    assert "chatlens models fetch qwen2.5-coder-1.5b-instruct" in metrics["skipped"]["llamacpp"]
    extractive = metrics["summaries"]["extractive"]
    assert 0 < extractive["rougeL_ci_low"] <= extractive["rougeL"] <= extractive["rougeL_ci_high"] < 1
    lines = (out / "summaries.jsonl").read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["extractive"]
    assert "| extractive |" in (out / "report.md").read_text()
    [logged] = mlflow.search_runs(experiment_names=["chatlens-summaries"], output_format="list")
    assert logged.data.metrics["rougeL"] == extractive["rougeL"]
    assert logged.data.metrics["rougeL_ci_high"] == extractive["rougeL_ci_high"]
    assert logged.data.params["backend"] == "extractive"


def test_run_summaries_are_scored_where_a_reference_exists(fake_redis, tmp_path: Path) -> None:
    store = RunStore(fake_redis, 3600)
    references = write_json(tmp_path / "refs.json", CONVERSATIONS)
    store_messages(
        store,
        "r",
        [
            Message(id="m1", conversation_id="1", position=1, text="world"),
            Message(id="m0", conversation_id="1", position=0, text="hello"),
            Message(id="m2", conversation_id="other", position=0, text="no reference for me"),
        ],
    )
    for cid, text in (("1", CONVERSATIONS[0]["summary"]), ("other", "whatever")):
        store.write_summary(
            "r",
            Summary(
                conversation_id=cid,
                backend="extractive",
                model_id="m",
                text=text,
                turns=2,
                input_tokens=4,
                output_tokens=2,
                calls=1,
                latency_ms=250.0,
                worker="w",
            ),
        )
    scored = score_run_summaries(store, "r", store.messages("r"), references)
    assert scored["extractive"]["conversations"] == 1
    assert scored["extractive"]["rougeL"] == 1.0  # identical to its reference
    assert scored["extractive"]["seconds_per_conversation"] == 0.25
    assert score_run_summaries(store, "r", store.messages("r"), None) == {}
