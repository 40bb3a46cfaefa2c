"""`Summariser`: what a summary worker runs a whole conversation through, and the registry of backends.

Adding a summariser is one module under `chatlens/backends/summarisers/` with a factory that takes the
`Settings`, plus one `SUMMARISERS.add` line below; its queue is `summarise-<name>`. This module also
holds what the generative backends share: the instructions, and map-reduce over chunks of turns, so
that a conversation longer than a model's context is summarised whole instead of being cut or refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from chatlens.core.registry import Registry
from chatlens.core.settings import Settings

# Chosen by measurement (scripts/summary_prompts.py, README "llama.cpp backend"): on 12 validation
# conversations this wording scored ROUGE-L 0.361 against 0.276 for the earlier "2-3 sentences, topics and
# stance" one with Qwen2.5-Coder-1.5B; a length bound alone or a "use only stated facts" clause did less.
INSTRUCTION = (
    'Summarise the following conversation in two sentences, in the third person ("The speakers '
    'discuss ..."). Name the main topics in the order they come up and any opinion a speaker states. '
    "Reply with the summary only."
)
PART_INSTRUCTION = (
    "The following is one part of a longer conversation. Summarise it in two sentences, in the third "
    "person: the topics in the order they come up and any opinion a speaker states. Reply with the "
    "summary only."
)
COMBINE_INSTRUCTION = (
    "The following are summaries of consecutive parts of one conversation. Combine them into one "
    'summary of two sentences, in the third person ("The speakers discuss ..."): the main topics in '
    "order and any opinion a speaker states. Reply with the summary only."
)
INSTRUCTIONS = (INSTRUCTION, PART_INSTRUCTION, COMBINE_INSTRUCTION)


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


CountTokens = Callable[[str], int]
# generate(instruction, text) -> (summary, input tokens, output tokens)
Generate = Callable[[str, str], tuple[str, int, int]]


def prompt_overhead(prompt: Callable[[str, str], list[int]]) -> int:
    """Tokens a chat prompt spends besides the conversation: its longest instruction, in the template."""
    return max(len(prompt(instruction, "")) for instruction in INSTRUCTIONS)


def _pieces(turns: Sequence[str], count: CountTokens, budget: int) -> list[str]:
    """Turns, with any turn over the budget split by sentences, and any sentence over it by words."""
    pieces: list[str] = []
    for turn in turns:
        turn = " ".join(turn.split())
        if not turn:
            continue
        if count(turn) <= budget:
            pieces.append(turn)
            continue
        for sentence in split_sentences(turn):
            if count(sentence) <= budget:
                pieces.append(sentence)
                continue
            pieces.extend(_word_windows(sentence, count, budget))
    return pieces


def _word_windows(text: str, count: CountTokens, budget: int) -> list[str]:
    windows: list[str] = []
    current: list[str] = []
    for word in text.split():
        if current and count(" ".join([*current, word])) > budget:
            windows.append(" ".join(current))
            current = []
        if count(word) > budget:  # a pasted blob with no spaces: cut it by characters
            windows.extend(_character_windows(word, count, budget))
            continue
        current.append(word)
    if current:
        windows.append(" ".join(current))
    return windows


def _character_windows(word: str, count: CountTokens, budget: int) -> list[str]:
    windows: list[str] = []
    while word:
        # The longest prefix within the budget, by bisection: a few tokenizer calls per window.
        low, high = 1, len(word)
        while low < high:
            middle = (low + high + 1) // 2
            if count(word[:middle]) <= budget:
                low = middle
            else:
                high = middle - 1
        windows.append(word[:low])
        word = word[low:]
    return windows


def chunk_turns(turns: Sequence[str], count: CountTokens, budget: int) -> list[list[str]]:
    """Consecutive turns packed greedily into chunks of at most `budget` tokens (as joined by
    `conversation_text`). Turn order is kept and no text is dropped."""
    if budget < 8:
        raise ValueError(f"a chunk budget of {budget} tokens is too small to summarise anything")
    chunks: list[list[str]] = []
    current: list[str] = []
    for piece in _pieces(turns, count, budget):
        if current and count(conversation_text([*current, piece])) > budget:
            chunks.append(current)
            current = []
        current.append(piece)
    if current:
        chunks.append(current)
    return chunks


def _clip(text: str, count: CountTokens, limit: int) -> str:
    """The leading sentences (or words) of `text` that fit in `limit` tokens."""
    if count(text) <= limit:
        return text
    kept: list[str] = []
    for sentence in split_sentences(text):
        if count(" ".join([*kept, sentence])) > limit:
            break
        kept.append(sentence)
    if kept:
        return " ".join(kept)
    return _word_windows(text, count, limit)[0]


def map_reduce(turns: Sequence[str], count: CountTokens, budget: int, generate: Generate) -> SummaryText:
    """One call when the conversation fits in `budget` tokens; otherwise summarise chunks of turns, then
    combine the partial summaries (recursively, if they do not fit together either)."""
    chunks = chunk_turns(turns, count, budget)
    if len(chunks) <= 1:
        text, read, written = generate(INSTRUCTION, conversation_text(chunks[0] if chunks else []))
        return SummaryText(text.strip(), read, written, 1)
    read = written = calls = 0
    partials: list[str] = []
    for chunk in chunks:
        text, r, w = generate(PART_INSTRUCTION, conversation_text(chunk))
        partials.append(text.strip())
        read, written, calls = read + r, written + w, calls + 1
    while True:
        # A partial summary may use at most half the budget, so every round at least halves the number
        # of chunks and the recursion ends.
        partials = [_clip(p, count, (budget - 4) // 2) for p in partials if p]
        groups = chunk_turns(partials, count, budget)
        if 1 < len(partials) <= len(groups):
            raise RuntimeError(f"map-reduce made no progress with a budget of {budget} tokens")
        if len(groups) <= 1:
            text, r, w = generate(COMBINE_INSTRUCTION, conversation_text(groups[0] if groups else []))
            return SummaryText(text.strip(), read + r, written + w, calls + 1)
        combined: list[str] = []
        for group in groups:
            text, r, w = generate(COMBINE_INSTRUCTION, conversation_text(group))
            combined.append(text.strip())
            read, written, calls = read + r, written + w, calls + 1
        partials = combined
