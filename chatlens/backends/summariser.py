"""`Summariser`: what a summary worker runs a whole conversation through, and the registry of backends.

Adding a summariser is one module under `chatlens/backends/summarisers/` with a factory that takes the
`Settings`, plus one `SUMMARISERS.add` line below; its queue is `summarise-<name>`. A generative backend
(an LLM) builds on `chatlens.backends.summarisers.generative.GenerativeSummariser`, which owns the prompt,
the budget and map-reduce; this module keeps what every backend shares: the record and the text helpers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from chatlens.core.registry import Registry
from chatlens.core.settings import Settings


@dataclass(frozen=True)
class SummaryText:
    text: str
    input_tokens: int  # tokens read, over every generation call
    output_tokens: int  # tokens written, over every generation call
    calls: int = 1  # generation calls: more than one when the conversation was chunked


class Summariser(Protocol):
    backend: str  # its name in SUMMARISERS
    model_id: str  # what the summary came from (HF id or local dir, with its revision where known)

    def summarise(self, turns: Sequence[str]) -> SummaryText: ...


SUMMARISERS: Registry[Summariser] = Registry(
    "summary backend", "CHATLENS_SUMMARY_BACKEND", "chatlens.summarisers"
)
SUMMARISERS.add("extractive", "chatlens.backends.summarisers.extractive:ExtractiveSummariser.from_settings")
SUMMARISERS.add("transformers", "chatlens.backends.summarisers.transformers:HFSummariser.from_settings")
SUMMARISERS.add("mlx", "chatlens.backends.summarisers.mlx:MLXSummariser.from_settings")
SUMMARISERS.add("llamacpp", "chatlens.backends.summarisers.llamacpp:LlamaCppSummariser.from_settings")


def configured_model(settings: Settings, backend: str) -> str | None:
    """CHATLENS_SUMMARY_MODEL belongs to CHATLENS_SUMMARY_BACKEND; any other backend uses its default."""
    return settings.summary_model if settings.summary_backend == backend else None


# Sentence ends: . ! ? (optionally followed by a closing quote or bracket, kept) then whitespace. Chat
# text has few abbreviations worth a model; a missed split only makes a longer "sentence".
_SENTENCE_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"')\]]))\s+")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def conversation_text(turns: Sequence[str]) -> str:
    """The turns as one text, one turn per line: the form every generative prompt uses."""
    return "\n".join(" ".join(t.split()) for t in turns if t.strip())
