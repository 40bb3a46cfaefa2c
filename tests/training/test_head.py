"""A tiny training run through the real code path: features, weighted loss, logit adjustment, saved head."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatlens.backends.classifiers.minilm import MiniLMClassifier
from chatlens.backends.head_module import load_head
from chatlens.cli.demo import EXAMPLE_FILE
from chatlens.core.labels import LABELS
from chatlens.training.data import load_split
from chatlens.training.head import TrainOptions, train_head
from eval.metrics import score

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

    # Served, the head labels the held-out conversations as training did: eval scores those labels
    # with the very figures the card records.
    split = load_split([EXAMPLE_FILE], 0.2, 0)
    served = MiniLMClassifier(head_dir=tmp_path / "head").predict([split.data.texts[i] for i in split.val])
    truth = [LABELS[i] for i in split.data.y[split.val]]
    metrics = score("default", truth, [o.label for o in served], len(served), len(served))
    assert {"accuracy": metrics.accuracy, "macro_f1": metrics.macro_f1} == card["training"]["validation"]
