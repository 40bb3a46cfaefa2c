"""`Classifier`: what a worker runs a micro-batch through. Backends: `minilm` (the offline default),
`zeroshot` (NLI), `emotion` (go_emotions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Output:
    label: str
    confidence: float


class Classifier(Protocol):
    name: str
    version: str

    def predict(self, texts: list[str]) -> list[Output]: ...
