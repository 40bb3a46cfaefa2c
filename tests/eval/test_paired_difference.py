"""The paired bootstrap difference of per-conversation scores."""

from __future__ import annotations

import pytest

from eval.summary_metrics import paired_difference, rouge_l_per_summary


def test_a_constant_gain_has_a_point_interval() -> None:
    base = [0.1, 0.5, 0.2, 0.9, 0.3]
    mean, low, high = paired_difference([b + 0.05 for b in base], base)
    assert mean == pytest.approx(0.05) and low == pytest.approx(0.05) and high == pytest.approx(0.05)


def test_pairing_finds_a_gain_that_unpaired_spread_would_hide() -> None:
    base = [0.05 * i for i in range(20)]  # a wide spread across conversations
    better = [b + (0.02 if i % 2 else 0.01) for i, b in enumerate(base)]
    mean, low, high = paired_difference(better, base)
    assert 0.01 <= low <= mean <= high <= 0.02


def test_lengths_must_match() -> None:
    with pytest.raises(ValueError):
        paired_difference([0.1], [0.1, 0.2])


def test_rouge_l_per_summary() -> None:
    scores = rouge_l_per_summary(["the cat sat", "nothing alike"], ["the cat sat", "a dog ran"])
    assert scores == [1.0, 0.0]
