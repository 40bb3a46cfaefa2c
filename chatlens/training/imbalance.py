"""The imbalance remedy every trainer applies: a class-weighted loss, then a logit adjustment.

The loss is class-weighted by (1/frequency)^power. The one free knob after training is the strength tau
of the logit adjustment (logits - tau * log prior), chosen on the validation conversations by macro-F1.
Per-class thresholds were tried and dropped: with 20-30 validation examples of the rarest labels they
fit the slice, not the labels (the figures: scripts/research/README.md).
"""

from __future__ import annotations

import numpy as np
import torch

from chatlens.core.labels import LABELS
from eval.metrics import confusion, macro_f1


def class_weights(y: np.ndarray, power: float, represented: np.ndarray | None = None) -> torch.Tensor:
    """(1/frequency)^power, scaled so that the mean weight over the training rows is 1. `represented`
    (rows each kept row stands for, per class) turns capped counts back into the files' frequencies."""
    kept = np.bincount(y, minlength=len(LABELS)).astype(np.float64)
    scale = np.ones(len(LABELS)) if represented is None else represented
    counts = kept * scale
    weights = (counts.sum() / np.clip(counts, 1e-9, None)) ** power * scale
    return torch.tensor(weights / (weights * kept).sum() * kept.sum(), dtype=torch.float32)


def tune_adjustment(
    logits: np.ndarray, y: np.ndarray, prior: np.ndarray, weight: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """The tau in logits - tau * log(prior) with the best validation macro-F1 (ties: closest to 0)."""
    log_prior = np.log(np.clip(prior, 1e-12, None))
    taus = sorted(np.round(np.arange(-1.0, 2.0001, 0.05), 2), key=abs)

    def score(tau: float) -> float:
        return macro_f1(confusion(y, (logits - tau * log_prior).argmax(1), logits.shape[1], weight))

    best = max(taus, key=score)
    return float(best), -best * log_prior
