"""`Classifier`: what a worker runs a micro-batch through, and the registry of classifier backends.

Adding a classifier is one module under `chatlens/backends/classifiers/` with a factory that takes the
`Settings`, plus one `CLASSIFIERS.add` line below. Its registry key is its one name: the queue
`classify-<key>`, and the name its results are stored, reported, counted and tracked under. A classifier
does not name itself, so it cannot disagree with its key; it says what exactly it is in `version`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from chatlens.core.registry import Registry


@dataclass(frozen=True)
class Output:
    label: str  # one of chatlens.core.labels.LABELS
    confidence: float


class Classifier(Protocol):
    # What exactly produced a result: the weights (id and revision, or a hash), the head and adapter
    # hashes, how it runs (int8, half precision) and any setting that changes its answers.
    version: str

    def predict(self, texts: list[str]) -> list[Output]: ...


class Scores(Protocol):
    """A (messages, labels) torch tensor, by what is read of it: a producer imports this module to check
    classifier names, and has no torch."""

    def max(self, dim: int) -> Any: ...


def top_outputs(scores: Scores | np.ndarray, labels: Sequence[str]) -> list[Output]:
    """Scores (probabilities, or a score per label; a torch tensor or a numpy array) -> each message's
    best label, its score the confidence."""
    if isinstance(scores, np.ndarray):
        index, confidence = scores.argmax(axis=-1), scores.max(axis=-1)
    else:
        confidence, index = scores.max(dim=-1)  # type: ignore[call-overload]
    return [Output(labels[i], float(c)) for i, c in zip(index.tolist(), confidence.tolist(), strict=True)]


CLASSIFIERS: Registry[Classifier] = Registry("classifier", "CHATLENS_CLASSIFIERS", "chatlens.classifiers")
CLASSIFIERS.add("default", "chatlens.backends.classifiers.minilm:build")
CLASSIFIERS.add("zeroshot", "chatlens.backends.classifiers.zeroshot:build")
CLASSIFIERS.add("emotion", "chatlens.backends.classifiers.emotion:build")
CLASSIFIERS.add("finetuned", "chatlens.backends.classifiers.finetuned:build")
CLASSIFIERS.add("accurate", "chatlens.backends.classifiers.accurate:build")
