"""Three classifier queues side by side on a real redis-server, one worker process each, compared by eval."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import redis

from chatlens.cli.demo import EXAMPLE_FILE
from chatlens.core import keys
from tests.fixtures.tiny_models import save_tiny_bart_mnli, save_tiny_roberta_go_emotions
from tests.helpers import chatlens_cmd, run_chatlens, subprocess_env

# A real model, a subprocess or a real redis-server: the full suite only, not `make test-fast`.
pytestmark = pytest.mark.slow


def test_default_zeroshot_and_emotion_queues(redis_url: str, tmp_path: Path) -> None:
    bart = save_tiny_bart_mnli(tmp_path / "bart", {0: "contradiction", 1: "neutral", 2: "entailment"})
    roberta = save_tiny_roberta_go_emotions(tmp_path / "roberta")
    env = subprocess_env(
        CHATLENS_REDIS_URL=redis_url,
        CHATLENS_CLASSIFIERS="default,zeroshot,emotion",
        CHATLENS_ZEROSHOT_MODEL=str(bart),
        CHATLENS_EMOTION_MODEL=str(roberta),
        CHATLENS_DEVICE="cpu",
    )
    produced = run_chatlens(
        "produce", str(EXAMPLE_FILE), "--run", "three", "--batch-size", "16", env=env, timeout=300
    )
    assert produced.returncode == 0, produced.stderr
    assert "no live worker on classify-default, classify-zeroshot, classify-emotion" in produced.stderr

    workers = [
        subprocess.Popen(chatlens_cmd("worker", "--queue", f"classify-{name}", "--burst", "--threads", "1"),
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for name in ("default", "zeroshot", "emotion")
    ]  # fmt: skip
    for worker in workers:
        assert worker.wait(300) == 0, worker.stderr.read() if worker.stderr else ""

    connection = redis.Redis.from_url(redis_url)
    message_ids = set(connection.hkeys(keys.messages("three")))
    assert len(message_ids) == 95
    for model in ("default", "zeroshot", "emotion"):
        assert set(connection.hkeys(keys.results("three", model))) == message_ids, model

    out = tmp_path / "report"
    evaluated = run_chatlens("eval", "--run", "three", "--out", str(out), env=env, timeout=300)
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert sorted(metrics["models"]) == ["default", "emotion", "zeroshot"]
    assert all(m["coverage"] == 1.0 and m["n"] == 95 for m in metrics["models"].values())
    (version,) = metrics["models"]["zeroshot"]["model_versions"]
    assert version.startswith(f"{bart}+hypotheses-")  # the weights, then the hypotheses' hash
    for model in metrics["models"]:
        assert (out / f"confusion_{model}.png").exists()
    report = (out / "report.md").read_text()
    assert "| emotion |" in report and "| zeroshot |" in report

    exported = run_chatlens("results", "--run", "three", "--format", "jsonl", env=env, timeout=300)
    records = [json.loads(line) for line in exported.stdout.splitlines()]
    assert len(records) == 95
    assert all(sorted(r["predictions"]) == ["default", "emotion", "zeroshot"] for r in records)


def test_a_worker_without_its_model_refuses_to_start(redis_url: str) -> None:
    env = subprocess_env(CHATLENS_REDIS_URL=redis_url, HF_HUB_OFFLINE="1", HF_HOME="/nonexistent-hf-home")
    proc = run_chatlens("worker", "--queue", "classify-zeroshot", "--burst", env=env, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "'facebook/bart-large-mnli'" in lines[0] and "HF_HOME" in lines[0] and "local path" in lines[0]
