"""Scoring one model's predictions against the true labels."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from chatlens.core.labels import LABELS


@dataclass(frozen=True)
class ClassScores:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ModelMetrics:
    model: str
    model_versions: list[str]
    accuracy: float
    macro_f1: float
    weighted_f1: float
    n: int  # labelled messages with a result
    results: int  # all messages with a result
    coverage: float  # results / enqueued messages
    errors: int
    labels: list[str]
    confusion_matrix: list[list[int]]
    per_class: list[ClassScores]

    def summary(self) -> dict:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "weighted_f1": self.weighted_f1,
            "n": self.n,
            "coverage": self.coverage,
            "results": self.results,
            "errors": self.errors,
            "model_versions": self.model_versions,
            "labels": self.labels,
            "confusion_matrix": self.confusion_matrix,
        }


def score(
    model: str,
    y_true: list[str],
    y_pred: list[str],
    results: int,
    enqueued: int,
    errors: int = 0,
    versions: list[str] | None = None,
) -> ModelMetrics:
    """Labels are those that occur in truth or prediction, in the canonical order; F1s average over them."""
    return score_counts(model, Counter(zip(y_true, y_pred, strict=True)), results, enqueued, errors, versions)


def score_counts(
    model: str,
    pairs: Counter[tuple[str, str]],
    results: int,
    enqueued: int,
    errors: int = 0,
    versions: list[str] | None = None,
) -> ModelMetrics:
    """`score` from the counts of (true, predicted) pairs: what an evaluation accumulates chunk by chunk,
    so a run of any size is scored in memory the size of the label set. The formulas are sklearn's
    (precision_recall_fscore_support, zero_division=0)."""
    present = {label for pair in pairs for label in pair}
    labels = [label for label in LABELS if label in present] + sorted(present - set(LABELS))
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for (truth, predicted), count in pairs.items():
        matrix[index[truth], index[predicted]] += count
    n = int(matrix.sum())
    if n:
        precision, recall, f1 = class_scores(matrix)
        support = matrix.sum(axis=1)
        per_class = [
            ClassScores(label, float(p), float(r), float(f), int(c))
            for label, p, r, f, c in zip(labels, precision, recall, f1, support, strict=True)
        ]
        accuracy = float(np.trace(matrix) / n)
        macro = macro_f1(matrix)
        weighted = float((f1 * support).sum() / support.sum()) if support.sum() else 0.0
        rows = matrix.tolist()
    else:
        per_class, rows, accuracy, macro, weighted = [], [], 0.0, 0.0, 0.0
    return ModelMetrics(
        model=model,
        model_versions=sorted(versions or []),
        accuracy=round(accuracy, 4),
        macro_f1=round(macro, 4),
        weighted_f1=round(weighted, 4),
        n=n,
        results=results,
        coverage=round(results / enqueued, 4) if enqueued else 0.0,
        errors=errors,
        labels=labels,
        confusion_matrix=rows,
        per_class=per_class,
    )


def confusion(
    y_true: np.ndarray, y_pred: np.ndarray, n_labels: int, weight: np.ndarray | None = None
) -> np.ndarray:
    """`matrix[i, j]`: the rows of true label index i predicted as j, each counted as its weight (1)."""
    matrix = np.zeros((n_labels, n_labels))
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1.0 if weight is None else weight)
    return matrix


def class_scores(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall and F1 of a confusion matrix (sklearn's formulas, zero_division=0)."""
    tp = np.diag(matrix).astype(float)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    return _ratio(tp, predicted), _ratio(tp, support), _ratio(2 * tp, support + predicted)


def macro_f1(matrix: np.ndarray) -> float:
    """The one macro-F1 of chatlens: `chatlens eval` reports, the trainers' validation figures (and so
    their choice of epoch and logit adjustment) and the promotion gate all compute it here.

    It is the mean F1 over the labels that occur in the truth or in the predictions: sklearn's
    `f1_score(average="macro")` with its default `labels=None`, so anyone recomputing a figure with
    sklearn's defaults gets the same number. The alternative, a mean over all 8 labels
    (`labels=range(8)`), was what training used and was dropped. A label absent from both truth and
    predictions has no F1 to measure (0/0); scoring it 0 lowers the figure by 1/8 for the size of the
    set, not for any error, so a small validation slice, a `--limit` run or a one-conversation
    evaluation would read worse than the same model on a full set, and the figures of training and of
    reports could not be set side by side. On a set that holds all 8 labels, as test.csv and the
    validation conversations of the full training files do, the two definitions give the same number. A
    label predicted but never true still counts, with F1 0: a false alarm is an error.
    """
    _, _, f1 = class_scores(matrix)
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    return float(f1[present].mean()) if present.any() else 0.0


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (sklearn's zero_division=0)."""
    safe = np.where(denominator == 0, 1, denominator)
    return np.where(denominator == 0, 0.0, numerator / safe)
