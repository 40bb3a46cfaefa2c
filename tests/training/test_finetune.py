"""Fine-tuning: a tiny run on the real MiniLM that registers a version in a temp sqlite MLflow; the
promotion gate on both branches; a worker that follows a moved @champion alias between batches."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import redis
import torch

from chatlens.backends.classifiers.finetuned import FineTunedClassifier, RegistryClassifier
from chatlens.cli.demo import EXAMPLE_FILE
from chatlens.core import keys
from chatlens.core.labels import LABELS
from chatlens.core.schemas import Prediction
from chatlens.core.settings import Settings, get_settings
from chatlens.training import promote as promotion
from chatlens.training.data import load_split
from chatlens.training.finetune import FineTuneOptions, finetune, log_and_register
from eval.metrics import score
from producer.pipeline import produce_input
from tests.helpers import chatlens_cmd, subprocess_env

# A real model, a subprocess or a real redis-server: the full suite only, not `make test-fast`.
pytestmark = pytest.mark.slow


def train_version(tmp_path: Path, tag: str, epochs: int = 1) -> tuple[str, dict, np.ndarray]:
    """The registered version, the training report and the adjusted validation logits."""
    options = FineTuneOptions(train_files=(EXAMPLE_FILE,), out_dir=tmp_path / tag, epochs=epochs,
                              max_length=32, val_frac=0.2, device="cpu")  # fmt: skip
    report, val_logits = finetune(options, lambda *_: None)
    version = log_and_register(report, options.out_dir, get_settings().mlflow_tracking_uri, "tiny-ft")
    return version, report, val_logits


def test_tiny_finetune_registers_a_version_that_serves_what_it_validated(tmp_path: Path) -> None:
    uri = get_settings().mlflow_tracking_uri
    version, report, val_logits = train_version(tmp_path, "v1", epochs=2)
    assert version == "1"
    client = mlflow.MlflowClient(uri)
    mv = client.get_model_version("tiny-ft", "1")
    run = client.get_run(mv.run_id)
    assert run.data.params["base"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert run.data.params["data_sha256"] == report["data_sha256"] and len(report["data_sha256"]) == 64
    history = client.get_metric_history(mv.run_id, "val_macro_f1")
    assert [m.step for m in history] == [1, 2]
    artifacts = {a.path for a in client.list_artifacts(mv.run_id)}
    assert {"curves.png", "validation_report.txt", "model"} <= artifacts
    assert mv.tags["val_macro_f1"] == str(report["validation"]["macro_f1"])

    # What a worker loads from the registry is what training validated: on the held-out conversations,
    # the served logits are the trainer's adjusted ones, and eval scores its labels as the card does.
    split = load_split([EXAMPLE_FILE], 0.2, 0)
    texts = [split.data.texts[i] for i in split.val]
    assert len(texts) == report["validation_rows"] > 0
    served = RegistryClassifier("models:/tiny-ft/1", uri, torch.device("cpu"), 64, poll_s=0)
    assert served.current is not None
    logits = (served.current.logits(texts) + served.current.adjustment).numpy()
    np.testing.assert_allclose(logits, val_logits, atol=1e-4)
    labels = [o.label for o in served.predict(texts)]
    assert labels == [LABELS[i] for i in val_logits.argmax(1)]
    metrics = score("tiny-ft", [LABELS[i] for i in split.data.y[split.val]], labels, len(texts), len(texts))
    assert {"accuracy": metrics.accuracy, "macro_f1": metrics.macro_f1} == report["validation"]
    # Served from its local directory, a fine-tuned model's version names the directory and its head's hash.
    local = FineTunedClassifier(tmp_path / "v1", None, torch.device("cpu"))
    assert local.version.startswith(f"{tmp_path / 'v1'}+head-")


def test_promotion_gate_promotes_and_refuses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = get_settings().mlflow_tracking_uri
    _, report, _ = train_version(tmp_path, "v1")
    first = promotion.promote("tiny-ft", None, uri, [EXAMPLE_FILE], val_frac=0.2)
    assert first.promoted and first.reason == "there is no champion yet"
    # The gate scores the conversations training held out, with training's figures.
    assert first.scores["candidate"] == report["validation"]
    client = mlflow.MlflowClient(uri)
    assert str(client.get_model_version_by_alias("tiny-ft", "champion").version) == "1"

    train_version(tmp_path, "v2")
    scores = {"1": {"accuracy": 0.50, "macro_f1": 0.30}, "2": {"accuracy": 0.52, "macro_f1": 0.29}}
    monkeypatch.setattr(promotion, "score_version", lambda c, u, n, version, t, y: scores[version])
    refused = promotion.promote("tiny-ft", "2", uri, [EXAMPLE_FILE], val_frac=0.2)
    assert not refused.promoted and "does not beat the champion's 0.3000" in refused.reason
    assert str(client.get_model_version_by_alias("tiny-ft", "champion").version) == "1"

    scores["2"] = {"accuracy": 0.47, "macro_f1": 0.35}  # better F1, but too much accuracy lost
    assert not promotion.promote(
        "tiny-ft", "2", uri, [EXAMPLE_FILE], val_frac=0.2, max_accuracy_drop=0.01
    ).promoted
    scores["2"] = {"accuracy": 0.495, "macro_f1": 0.35}
    assert promotion.promote(
        "tiny-ft", "2", uri, [EXAMPLE_FILE], val_frac=0.2, max_accuracy_drop=0.01
    ).promoted
    assert str(client.get_model_version_by_alias("tiny-ft", "champion").version) == "2"
    runs = mlflow.search_runs(experiment_names=["chatlens-promotion"], output_format="list")
    assert sorted(r.data.tags["decision"] for r in runs) == ["promoted", "promoted", "refused", "refused"]


def test_decide_known_answers() -> None:
    assert promotion.decide("3", "3", {}, 0.01) == (False, "version 3 is already the champion")
    assert promotion.decide("1", None, {}, 0.01)[0]


def test_worker_follows_the_moved_alias_between_batches(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATLENS_CLASSIFIERS", "finetuned")  # what this test's produce fans out to
    get_settings.cache_clear()
    uri = get_settings().mlflow_tracking_uri
    client = mlflow.MlflowClient(uri)
    train_version(tmp_path, "v1")
    client.set_registered_model_alias("tiny-ft", "champion", "1")
    env = subprocess_env(CHATLENS_REDIS_URL=redis_url, CHATLENS_MLFLOW_TRACKING_URI=uri,
                         CHATLENS_FINETUNED_MODEL="models:/tiny-ft@champion", CHATLENS_REGISTRY_POLL_S="0",
                         CHATLENS_CLASSIFIERS="finetuned", CHATLENS_DEVICE="cpu")  # fmt: skip
    command = chatlens_cmd("worker", "--queue", "classify-finetuned", "--threads", "1")
    log_path = tmp_path / "worker.log"
    worker = subprocess.Popen(command, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT)
    connection = redis.Redis.from_url(redis_url)
    versions: dict[str, set[str]] = {}
    try:
        for run, text in (("before", "first batch"), ("after", "second batch")):
            if run == "after":
                train_version(tmp_path, "v2")
                client.set_registered_model_alias("tiny-ft", "champion", "2")
            path = tmp_path / f"{run}.csv"
            path.write_text("conversation_id,message\n" + "".join(f"1,{text} {i}\n" for i in range(4)))
            produce_input(Settings(), path, run, redis_url=redis_url, warn_idle_queues=False)
            deadline = time.monotonic() + 120
            while connection.hlen(keys.results(run, "finetuned")) < 4:
                assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
                assert time.monotonic() < deadline, "no results"
                time.sleep(0.2)
            raw = connection.hvals(keys.results(run, "finetuned"))
            versions[run] = {Prediction.model_validate_json(r).model_version for r in raw}
    finally:
        asked = time.monotonic()
        worker.terminate()  # idle by now: it exits within seconds, and says so
        worker.wait(timeout=60)
        took = time.monotonic() - asked
    log = log_path.read_text()
    assert worker.returncode == 0 and took < 5, (took, log[-2000:])
    assert "stopped: worker" in log.rstrip().splitlines()[-1], log[-2000:]
    assert versions == {"before": {"models:/tiny-ft/1"}, "after": {"models:/tiny-ft/2"}}
    loads = {k.decode(): int(v) for k, v in connection.hgetall(keys.MODEL_LOADS).items()}
    assert list(loads.values()) == [2]  # one start, one swap, no restart
