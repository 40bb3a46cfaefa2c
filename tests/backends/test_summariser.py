"""Chunking by turns and map-reduce: what lets a generative backend summarise any length."""

from __future__ import annotations

import pytest

from chatlens.backends.summariser import (
    COMBINE_INSTRUCTION,
    INSTRUCTION,
    PART_INSTRUCTION,
    chunk_turns,
    conversation_text,
    map_reduce,
    split_sentences,
)


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
