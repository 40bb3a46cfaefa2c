"""`Classifier`: what a worker runs a micro-batch through, and the registry of classifier backends.

Adding a classifier is one module under `chatlens/backends/classifiers/` with a factory that takes the
`Settings`, plus one `CLASSIFIERS.add` line below. Its queue is `classify-<name>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chatlens.core.registry import Registry


@dataclass(frozen=True)
class Output:
    label: str  # one of chatlens.core.labels.LABELS
    confidence: float


class Classifier(Protocol):
    name: str  # what results are stored under
    version: str  # what exactly produced them (model id, revision, head hash)

    def predict(self, texts: list[str]) -> list[Output]: ...


CLASSIFIERS: Registry[Classifier] = Registry("classifier", "CHATLENS_CLASSIFIERS", "chatlens.classifiers")
CLASSIFIERS.add("default", "chatlens.backends.classifiers.minilm:build")
CLASSIFIERS.add("zeroshot", "chatlens.backends.classifiers.zeroshot:build")
CLASSIFIERS.add("emotion", "chatlens.backends.classifiers.emotion:build")
CLASSIFIERS.add("finetuned", "chatlens.backends.classifiers.finetuned:build")
CLASSIFIERS.add("accurate", "chatlens.backends.classifiers.accurate:build")
