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
        tp = np.diag(matrix).astype(float)
        support = matrix.sum(axis=1)
        predicted_total = matrix.sum(axis=0)
        precision = _ratio(tp, predicted_total)
        recall = _ratio(tp, support)
        f1 = _ratio(2 * tp, support + predicted_total)
        per_class = [
            ClassScores(label, float(p), float(r), float(f), int(c))
            for label, p, r, f, c in zip(labels, precision, recall, f1, support, strict=True)
        ]
        accuracy = float(tp.sum() / n)
        macro = float(f1.mean())
        weighted = float((f1 * support).sum() / support.sum()) if support.sum() else 0.0
        confusion = matrix.tolist()
    else:
        per_class, confusion, accuracy, macro, weighted = [], [], 0.0, 0.0, 0.0
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
        confusion_matrix=confusion,
        per_class=per_class,
    )


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (sklearn's zero_division=0)."""
    safe = np.where(denominator == 0, 1, denominator)
    return np.where(denominator == 0, 0.0, numerator / safe)
