"""Training's validation figures are eval's: the same predictions give the same numbers, whichever side
computes them, including on a set that misses a label."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from chatlens.core.labels import LABELS
from chatlens.training.data import Labelled, Split
from chatlens.training.report import figures, per_class_text, validation_line, validation_report
from eval.metrics import score

# Angry (7) occurs nowhere; Fearful (6) is predicted once but never true; Sad (4) is true once, never found.
Y = np.array([0, 0, 0, 1, 1, 2, 3, 3, 4, 5])
P = np.array([0, 0, 1, 1, 6, 2, 3, 0, 0, 5])


def test_training_and_eval_give_the_same_figures_on_the_same_predictions() -> None:
    trained = figures(Y, P)
    evaluated = score("m", [LABELS[i] for i in Y], [LABELS[i] for i in P], results=len(Y), enqueued=len(Y))
    assert trained == {"accuracy": evaluated.accuracy, "macro_f1": evaluated.macro_f1}
    # The one definition is sklearn's default: the labels in truth or prediction, not all 8.
    assert trained["macro_f1"] == round(f1_score(Y, P, average="macro", zero_division=0), 4)
    over_all_8 = f1_score(Y, P, average="macro", labels=range(len(LABELS)), zero_division=0)
    assert trained["macro_f1"] > round(over_all_8, 4)  # the label absent from both is not a zero
    # Curious 4/7, Neutral 1/2, Surprised 1, Happy 2/3, Sad 0, Disgusted 1, Fearful 0: over 7 labels.
    assert trained["macro_f1"] == round((4 / 7 + 1 / 2 + 1 + 2 / 3 + 0 + 1 + 0) / 7, 4)


def test_weighted_figures_are_sklearns_with_sample_weights() -> None:
    weights = np.array([1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 1.0, 1.0, 5.0, 0.5])
    trained = figures(Y, P, weights)
    assert trained["macro_f1"] == round(f1_score(Y, P, average="macro", sample_weight=weights), 4)
    assert trained["accuracy"] == round(float(weights[Y == P].sum() / weights.sum()), 4)


def test_the_validation_report_card_and_line_agree() -> None:
    n = len(Y)
    groups = np.array([f"0#{i // 2}" for i in range(n + 4)], dtype=object)
    data = Labelled(
        texts=[f"t{i}" for i in range(n + 4)], y=np.concatenate([Y, [0, 1, 2, 3]]), groups=groups,
        weights=np.ones(n + 4), counts=np.bincount(Y, minlength=8), conversations=np.unique(groups),
        dropped={}, digest="d",
    )  # fmt: skip
    split = Split(data, train=np.arange(n, n + 4), val=np.arange(n))
    report = validation_report(split, (Path("a.csv"),), 0.25, plain=Y, adjusted=P)
    assert report["validation"] == figures(Y, P)
    assert report["validation_before_adjustment"] == {"accuracy": 1.0, "macro_f1": 1.0}
    assert (report["validation_rows"], report["train_rows"], report["validation_conversations"]) == (10, 4, 5)
    per_class = report["validation_per_class"]
    assert list(per_class) == list(LABELS[:7])  # Angry, in neither truth nor prediction, has no F1
    assert per_class["Neutral"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert per_class["Fearful"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    mean_f1 = np.mean([s["f1"] for s in per_class.values()])
    assert abs(mean_f1 - report["validation"]["macro_f1"]) < 1e-3
    assert f"macro-F1 {report['validation']['macro_f1']:.4f}" in per_class_text(report)
    line = validation_line(report, "tail")
    assert line.startswith("validation (10 rows, 5 conversations): accuracy 1.000 / macro-F1 1.000 -> ")
    assert line.endswith(f"(tau 0.25) 0.600 / {report['validation']['macro_f1']:.3f}; tail")
