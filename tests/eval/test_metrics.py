"""Scoring on hand-made predictions with known answers."""

import numpy as np
import pytest

from chatlens.core.labels import LABELS
from eval.metrics import confusion, macro_f1, score


def test_known_answer() -> None:
    y_true = ["Happy", "Happy", "Sad", "Sad", "Angry", "Neutral"]
    y_pred = ["Happy", "Sad", "Sad", "Sad", "Happy", "Neutral"]
    m = score("m", y_true, y_pred, results=6, enqueued=8, errors=1, versions=["v2", "v1"])
    assert m.accuracy == round(4 / 6, 4)
    # Per-class F1: Neutral 1, Happy 0.5, Sad 0.8, Angry 0 -> macro 0.575.
    assert m.macro_f1 == 0.575
    assert m.weighted_f1 == round((1 * 1 + 0.5 * 2 + 0.8 * 2 + 0 * 1) / 6, 4)
    assert m.labels == ["Neutral", "Happy", "Sad", "Angry"]  # canonical order, present labels only
    assert m.confusion_matrix == [[1, 0, 0, 0], [0, 1, 1, 0], [0, 0, 2, 0], [0, 1, 0, 0]]
    assert (m.n, m.results, m.coverage, m.errors) == (6, 6, 0.75, 1)
    assert m.model_versions == ["v1", "v2"]
    sad = next(c for c in m.per_class if c.label == "Sad")
    assert (round(sad.precision, 4), sad.recall, sad.support) == (0.6667, 1.0, 2)


def test_no_labelled_results() -> None:
    m = score("m", [], [], results=0, enqueued=3)
    assert (m.accuracy, m.macro_f1, m.n, m.coverage, m.confusion_matrix) == (0.0, 0.0, 0, 0.0, [])


def test_macro_f1_averages_over_the_labels_in_truth_or_prediction() -> None:
    # Labels 0..3: 2 is in neither truth nor prediction, 3 is predicted once but never true.
    matrix = confusion(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 3]), n_labels=4)
    assert matrix.tolist() == [[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]]
    # F1: label 0 2/3, label 1 1/2, label 3 0 (a false alarm counts); label 2 is not averaged in.
    assert macro_f1(matrix) == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    assert macro_f1(np.zeros((4, 4))) == 0.0
    weighted = confusion(np.array([0, 1]), np.array([0, 0]), n_labels=2, weight=np.array([2.0, 0.5]))
    assert weighted.tolist() == [[2.0, 0.0], [0.5, 0.0]]


def test_the_report_and_the_matrix_give_one_macro_f1() -> None:
    y_true = ["Happy", "Happy", "Sad", "Angry"]
    y_pred = ["Happy", "Sad", "Sad", "Fearful"]
    index = {label: i for i, label in enumerate(LABELS)}
    matrix = confusion(
        np.array([index[t] for t in y_true]), np.array([index[p] for p in y_pred]), len(LABELS)
    )
    assert score("m", y_true, y_pred, results=4, enqueued=4).macro_f1 == round(macro_f1(matrix), 4)
