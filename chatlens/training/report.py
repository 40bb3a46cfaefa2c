"""What every trainer reports: validation figures, the training report in a model's card, the one line it
prints at the end, and the validation predictions it can leave for later study.

The figures are eval's (`eval.metrics`): a validation macro-F1 here is the number `chatlens eval` would
give for the same predictions. Torch is not imported, so the command line can use this module freely.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chatlens.core.labels import LABELS
from chatlens.training.data import Split
from eval.metrics import class_scores, confusion, macro_f1

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from chatlens.backends.head_module import ClassifierHead


def figures(y: np.ndarray, predicted: np.ndarray, weight: np.ndarray | None = None) -> dict[str, float]:
    """Accuracy and macro-F1 (rounded to 4 places) of label-index predictions, rows weighted by `weight`."""
    matrix = confusion(y, predicted, len(LABELS), weight)
    total = float(matrix.sum())
    return {
        "accuracy": round(float(np.trace(matrix)) / total, 4) if total else 0.0,
        "macro_f1": round(macro_f1(matrix), 4),
    }


def validation_report(split: Split, train_files: tuple[Path, ...], tau: float, plain: np.ndarray,
                      adjusted: np.ndarray) -> dict:  # fmt: skip
    """What a model's card says of its data and validation, for every trainer alike: `plain` and
    `adjusted` are the validation predictions before and after the logit adjustment."""
    data = split.data
    y_val, w_val = data.y[split.val], data.weights[split.val]
    return {
        "train_files": [str(f) for f in train_files],
        "data_sha256": data.digest,
        "rows": len(data.texts),
        "train_rows": len(split.train),
        "validation_rows": len(split.val),
        "validation_conversations": len(set(data.groups[split.val].tolist())),
        "class_counts": {label: int(c) for label, c in zip(LABELS, data.counts, strict=True)},
        "dropped_by_cleaning": data.dropped,
        "tau": tau,
        "validation_before_adjustment": figures(y_val, plain, w_val),
        "validation": figures(y_val, adjusted, w_val),
        "validation_per_class": _per_class(y_val, adjusted, w_val),
    }


def _per_class(y: np.ndarray, predicted: np.ndarray, weight: np.ndarray) -> dict[str, dict[str, float]]:
    """The labels macro-F1 averages over (in truth or prediction), as eval's report lists them."""
    matrix = confusion(y, predicted, len(LABELS), weight)
    precision, recall, f1 = class_scores(matrix)
    support = np.bincount(y, minlength=len(LABELS))
    present = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    return {
        label: {"precision": round(float(precision[i]), 4), "recall": round(float(recall[i]), 4),
                "f1": round(float(f1[i]), 4), "support": int(support[i])}
        for i, label in enumerate(LABELS) if present[i]
    }  # fmt: skip


def per_class_text(report: dict) -> str:
    """The validation report's per-class figures as a plain-text table."""
    lines = [f"{'label':<24}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
    for label, s in report["validation_per_class"].items():
        lines.append(
            f"{label:<24}{s['precision']:>10.4f}{s['recall']:>10.4f}{s['f1']:>10.4f}{s['support']:>10}"
        )
    v = report["validation"]
    lines.append(f"\naccuracy {v['accuracy']:.4f}, macro-F1 {v['macro_f1']:.4f} (eval.metrics.macro_f1)")
    return "\n".join(lines) + "\n"


def validation_line(report: dict, tail: str) -> str:
    """The one line every trainer ends with: validation before and after the logit adjustment."""
    v0, v1 = report["validation_before_adjustment"], report["validation"]
    return (
        f"validation ({report['validation_rows']} rows, {report['validation_conversations']} conversations): "
        f"accuracy {v0['accuracy']:.3f} / macro-F1 {v0['macro_f1']:.3f} -> "
        f"with logit adjustment (tau {report['tau']:.2f}) {v1['accuracy']:.3f} / {v1['macro_f1']:.3f}; {tail}"
    )


def set_card(head: ClassifierHead, adjustment: np.ndarray, report: dict) -> None:
    """The tuned logit adjustment, in the weights and in the card written beside head.safetensors, and
    the training report in the card."""
    head.config = head.config.model_copy(
        update={"logit_adjustment": [float(a) for a in adjustment], "training": report}
    )
    head.adjustment.copy_(head.adjustment.new_tensor(adjustment))


def save_predictions(
    path: Path, logits: np.ndarray, y: np.ndarray, weights: np.ndarray, prior: np.ndarray
) -> None:
    """The validation rows' raw logits, labels, weights and the class prior: enough to redo the logit
    adjustment for another objective (say, accuracy at a macro-F1 floor) without re-encoding."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, logits=logits, y=y, weights=weights, prior=prior, labels=np.array(LABELS))


def plain_options(options: DataclassInstance) -> dict:
    """A trainer's options as JSON values, for the card and MLflow."""
    return {k: _plain(v) for k, v in asdict(options).items()}


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
