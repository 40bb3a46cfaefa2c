"""Scoring one model's predictions against the true labels."""

from __future__ import annotations

from dataclasses import dataclass

from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

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
    present = set(y_true) | set(y_pred)
    labels = [label for label in LABELS if label in present] + sorted(present - set(LABELS))
    if y_true:
        precision, recall, f1, support = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, zero_division=0
        )
        per_class = [
            ClassScores(label, float(p), float(r), float(f), int(s))
            for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        ]
        matrix = confusion_matrix(y_true, y_pred, labels=labels).tolist()
        accuracy = float(accuracy_score(y_true, y_pred))
        macro = float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))
        weighted = float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0))
    else:
        per_class, matrix, accuracy, macro, weighted = [], [], 0.0, 0.0, 0.0
    return ModelMetrics(
        model=model,
        model_versions=sorted(versions or []),
        accuracy=round(accuracy, 4),
        macro_f1=round(macro, 4),
        weighted_f1=round(weighted, 4),
        n=len(y_true),
        results=results,
        coverage=round(results / enqueued, 4) if enqueued else 0.0,
        errors=errors,
        labels=labels,
        confusion_matrix=matrix,
        per_class=per_class,
    )
