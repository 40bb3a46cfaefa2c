"""The README's example backend, as a test uses it: one module, registered with one line."""

from __future__ import annotations

from chatlens.backends.classifier import Output
from chatlens.core.settings import Settings


class KeywordClassifier:
    version = "keyword-1"

    def predict(self, texts: list[str]) -> list[Output]:
        return [
            Output("Happy", 0.9)
            if "love" in t.lower()
            else Output("Curious to dive deeper", 0.6)
            if t.rstrip().endswith("?")
            else Output("Neutral", 0.5)
            for t in texts
        ]


def build(settings: Settings) -> KeywordClassifier:
    return KeywordClassifier()
