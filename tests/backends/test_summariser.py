"""Chunking by turns, map-reduce and the generative base: what lets a backend summarise any length."""

from __future__ import annotations

import pytest

from chatlens.backends.summariser import conversation_text, split_sentences
from chatlens.backends.summarisers.generative import (
    COMBINE_INSTRUCTION,
    INSTRUCTION,
    INSTRUCTIONS,
    PART_INSTRUCTION,
    GenerativeSummariser,
    chunk_turns,
    map_reduce,
)
from chatlens.core.errors import ChatlensError


def count(text: str) -> int:
    """A stand-in tokenizer: one token per word, and one per 10 characters of a long word."""
    return sum(max(1, len(word) // 10) for word in text.split())


def test_split_sentences() -> None:
    assert split_sentences('Hi there! Is it "done?" Yes. ok') == ["Hi there!", 'Is it "done?"', "Yes.", "ok"]
    assert split_sentences("   ") == []


def test_chunks_keep_order_and_lose_nothing() -> None:
    turns = [f"turn {i} " + "word " * (i % 7) for i in range(40)]
    chunks = chunk_turns(turns, count, 12)
    assert all(count(conversation_text(chunk)) <= 12 for chunk in chunks)
    assert " ".join(" ".join(c) for c in chunks).split() == " ".join(turns).split()


def test_oversized_turns_split_by_sentence_then_word_then_character() -> None:
    blob = "x" * 500  # no spaces: 50 "tokens" on its own
    turns = ["One short sentence. " + "many words " * 20 + "end.", blob]
    chunks = chunk_turns(turns, count, 8)
    pieces = [piece for chunk in chunks for piece in chunk]
    assert all(count(piece) <= 8 for piece in pieces)
    assert "".join(pieces).replace(" ", "") == "".join(turns).replace(" ", "")


def test_too_small_a_budget_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        chunk_turns(["a b c"], count, 4)


def test_one_call_when_it_fits() -> None:
    calls: list[tuple[str, str]] = []

    def generate(instruction: str, text: str) -> tuple[str, int, int]:
        calls.append((instruction, text))
        return "  the summary  ", count(text), 2

    result = map_reduce(["hello there", "general kenobi"], count, 100, generate)
    assert calls == [(INSTRUCTION, "hello there\ngeneral kenobi")]
    assert (result.text, result.input_tokens, result.output_tokens, result.calls) == ("the summary", 4, 2, 1)


def test_long_conversations_reduce_in_rounds_within_the_budget() -> None:
    budget = 30
    seen: list[tuple[str, int]] = []

    def generate(instruction: str, text: str) -> tuple[str, int, int]:
        assert count(text) <= budget  # no call ever gets more than the model can read
        seen.append((instruction, count(text)))
        # A wordy model: every partial summary uses 14 tokens, so combining needs more than one round.
        return " ".join(["summary"] * 14), count(text), 14

    turns = [f"this is turn number {i} of a long chat" for i in range(60)]
    result = map_reduce(turns, count, budget, generate)
    instructions = [i for i, _ in seen]
    assert instructions.count(PART_INSTRUCTION) == len(chunk_turns(turns, count, budget)) > 10
    assert instructions.count(COMBINE_INSTRUCTION) > 2 and instructions[-1] == COMBINE_INSTRUCTION
    assert result.calls == len(seen) and result.output_tokens == 14 * len(seen)
    assert result.input_tokens == sum(n for _, n in seen)


class WordSummariser(GenerativeSummariser):
    """A backend of the base with a tokenizer of words: a template of two ids around the message, and
    a model that answers with the last few words it read (on several lines, with stray spaces)."""

    backend = "words"

    def __init__(self, positions: int | None, context_tokens: int | None = None, max_new: int = 6) -> None:
        self.model_id, self.max_new_tokens = "toy", max_new
        self.vocabulary: dict[str, int] = {}
        self.rooms: list[int] = []
        self._set_budget(positions, context_tokens)

    def _text_ids(self, text: str) -> list[int]:
        return [self.vocabulary.setdefault(w, len(self.vocabulary) + 2) for w in text.split()]

    def _chat_ids(self, message: str) -> list[int]:
        return [0, *self._text_ids(message), 1]

    def _complete(self, prompt: list[int], max_new_tokens: int) -> tuple[str, int]:
        self.rooms.append(max_new_tokens)
        words = {i: w for w, i in self.vocabulary.items()}
        return " \n ".join(words[i] for i in prompt[-4:-1]) + "  ", 3


def test_the_base_owns_budget_prompt_and_generation() -> None:
    s = WordSummariser(positions=200)
    overhead = max(len(instruction.split()) for instruction in INSTRUCTIONS) + 2
    # The positions hold the prompt and the reply; the margin allows for merges at the text's edges.
    assert s.budget == 200 - 6 - overhead - s.boundary_margin
    assert WordSummariser(positions=200, context_tokens=120).budget == 120 - overhead - s.boundary_margin
    assert WordSummariser(positions=None, context_tokens=120).budget == s.budget - 74
    prompt = s.prompt_ids("Say it.", "a b")  # the instruction, a blank line and the text, in the template
    assert (prompt[0], len(prompt), prompt[-1]) == (0, 2 + 4, 1)
    assert s.count("a b c") == 3
    summary, read, written = s.generate("Say it.", "the end of it")
    assert (summary, read, written) == ("end of it", len(s.prompt_ids("Say it.", "the end of it")), 3)
    # Each call may write the setting, within the positions its prompt leaves (never less than one).
    free = 200 - len(s.prompt_ids(INSTRUCTION, ""))  # positions left by the prompt without text
    for words in (free - 10, free - 3, free + 5):
        s.generate(INSTRUCTION, " ".join(f"w{i}" for i in range(words)))
    assert s.rooms == [6, 6, 3, 1]
    result = s.summarise([f"turn {i} " + "word " * 20 for i in range(40)])
    assert result.calls > 2 and result.text == result.text.strip() and "\n" not in result.text


def test_the_base_refuses_a_context_it_cannot_use_in_one_line() -> None:
    with pytest.raises(ChatlensError, match="does not say how long its context is") as info:
        WordSummariser(positions=None)
    assert "CHATLENS_SUMMARY_CONTEXT_TOKENS" in str(info.value)
    with pytest.raises(ChatlensError, match=r"leaves -?\d+ tokens of conversation per call") as info:
        WordSummariser(positions=120, max_new=60)
    assert "\n" not in str(info.value) and "CHATLENS_SUMMARY_MAX_NEW_TOKENS" in str(info.value)
