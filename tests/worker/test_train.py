"""A tiny training run through the real code path: embeddings, weighted loss, offsets, saved head."""

from __future__ import annotations

import json
from pathlib import Path

from chatlens import LABELS
from chatlens.demo import EXAMPLE_FILE
from worker.classifier import MiniLMClassifier
from worker.head import load_head
from worker.train import TrainOptions, train_head, tune_offsets


def test_tiny_training_run_writes_a_head_the_classifier_loads(tmp_path: Path) -> None:
    stages: list[str] = []
    report = train_head(
        TrainOptions(train_file=EXAMPLE_FILE, out_dir=tmp_path / "head", epochs=3, val_frac=0.2),
        lambda stage, done, total: stages.append(stage.split(" ")[0]),
    )
    assert {"embed", "train"} <= set(stages)
    assert report["rows"] == 95 and report["validation_rows"] + report["train_rows"] == 95
    card = json.loads((tmp_path / "head" / "head.json").read_text())
    assert card["labels"] == list(LABELS) and len(card["logit_adjustment"]) == 8
    assert card["training"]["validation"] == report["validation"]
    head = load_head(tmp_path / "head")
    assert head.config.hidden_dim == TrainOptions.hidden_dim
    outputs = MiniLMClassifier(head_dir=tmp_path / "head").predict(["what do you think about that?"])
    assert outputs[0].label in LABELS


def test_offsets_raise_macro_f1_within_the_accuracy_budget() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    y = rng.choice(3, size=600, p=[0.8, 0.15, 0.05])
    logits = np.eye(3)[y] * 0.5 + rng.normal(0, 0.4, size=(600, 3))
    logits[:, 0] += 0.6  # a model biased towards the majority class
    from sklearn.metrics import accuracy_score, f1_score

    before_f1 = f1_score(y, logits.argmax(1), average="macro")
    offsets = tune_offsets(logits, y, max_accuracy_drop=0.02)
    after = (logits + offsets).argmax(1)
    assert f1_score(y, after, average="macro") > before_f1 + 0.05
    assert accuracy_score(y, after) >= accuracy_score(y, logits.argmax(1)) - 0.02
