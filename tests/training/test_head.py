"""A tiny training run through the real code path: features, weighted loss, logit adjustment, saved head."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatlens.backends.classifiers.minilm import MiniLMClassifier
from chatlens.backends.head import load_head
from chatlens.cli.demo import EXAMPLE_FILE
from chatlens.core.labels import LABELS
from chatlens.training.head import TrainOptions, class_weights, train_head, tune_adjustment

# A real model, a subprocess or a real redis-server: the full suite only, not `make test-fast`.
pytestmark = pytest.mark.slow


def test_tiny_training_run_writes_a_head_the_classifier_loads(tmp_path: Path) -> None:
    stages: list[str] = []
    report = train_head(
        TrainOptions(train_files=(EXAMPLE_FILE,), out_dir=tmp_path / "head", epochs=3, val_frac=0.2),
        lambda stage, done, total: stages.append(stage.split(" ")[0]),
    )
    assert {"encode", "train"} <= set(stages)
    assert report["rows"] == 95 and report["validation_rows"] + report["train_rows"] == 95
    card = json.loads((tmp_path / "head" / "head.json").read_text())
    assert card["labels"] == list(LABELS) and len(card["logit_adjustment"]) == 8
    assert card["training"]["validation"] == report["validation"]
    head = load_head(tmp_path / "head")
    assert head.config.hidden_dim == TrainOptions.hidden_dim and head.config.input_dim == 7 * 384
    assert float(head.input_std.min()) > 0
    outputs = MiniLMClassifier(head_dir=tmp_path / "head").predict(["what do you think about that?"])
    assert outputs[0].label in LABELS


def test_logit_adjustment_known_answer() -> None:
    import numpy as np

    prior = np.array([0.9, 0.1])
    # Raw logits that always favour the majority: only a positive tau recovers the minority.
    logits = np.array([[2.0, 0.5], [2.0, 0.5], [2.0, 1.0], [2.0, 1.0]])
    y = np.array([0, 0, 1, 1])
    tau, adjustment = tune_adjustment(logits, y, prior)
    predicted = (logits + adjustment).argmax(1)
    assert predicted.tolist() == [0, 0, 1, 1]
    assert tau > 0.0 and np.allclose(adjustment, -tau * np.log(prior))
    # Margins 1.5 and 1.0 in logit space, log-prior gap 2.197: tau must fall between 0.46 and 0.68.
    assert 1.0 / np.log(9) < tau < 1.5 / np.log(9)


def test_class_weights_average_one_per_row() -> None:
    import numpy as np

    y = np.array([0] * 90 + [1] * 10)
    weights = class_weights(y, 0.5)
    assert abs(float(weights[0]) * 90 + float(weights[1]) * 10 - 100) < 1e-3
    assert abs(float(weights[1] / weights[0]) - 3.0) < 1e-5  # sqrt(90/10)
