"""ROUGE and length scores on hand-made summaries with known answers."""

from __future__ import annotations

import pytest

from eval.summary_metrics import bootstrap_interval, score_summaries

SOURCE = "one two three four five six seven eight nine ten eleven twelve"


def test_identical_summaries_score_one() -> None:
    text = "The speakers discuss fish. They like cats."
    scores = score_summaries([text], [text], [SOURCE])
    assert (scores["rouge1"], scores["rouge2"], scores["rougeL"]) == (1.0, 1.0, 1.0)
    assert (scores["words"], scores["sentences"], scores["compression"]) == (7, 2, round(12 / 7, 4))


def test_disjoint_summaries_score_zero() -> None:
    scores = score_summaries(["apples oranges bananas"], ["cars trucks planes"], [SOURCE])
    assert (scores["rouge1"], scores["rouge2"], scores["rougeL"]) == (0.0, 0.0, 0.0)


def test_words_are_stemmed() -> None:
    scores = score_summaries(["The writer discussed dogs"], ["the writer discusses dog"], [SOURCE])
    assert scores["rouge1"] == scores["rougeL"] == 1.0


def test_known_partial_overlap_and_means() -> None:
    # Pair 1: LCS "the cat sat" (3 of 4 words each way) -> F 0.75; pair 2: identical -> 1.0.
    scores = score_summaries(
        ["the cat sat down", "hello there"], ["the cat sat up", "hello there"], [SOURCE, "a b c d"]
    )
    assert scores["rougeL"] == round((0.75 + 1.0) / 2, 4)
    assert scores["rouge2"] == round((2 / 3 + 1.0) / 2, 4)
    assert scores["words"] == 3.0
    assert scores["compression"] == round((12 / 4 + 4 / 2) / 2, 4)


def test_the_rouge_l_interval_brackets_the_mean() -> None:
    scores = score_summaries(
        ["the cat sat down", "hello there", "fish"], ["the cat sat up", "hello there", "dogs"], [SOURCE] * 3
    )
    assert scores["rougeL_ci_low"] <= scores["rougeL"] <= scores["rougeL_ci_high"]
    assert (scores["rougeL_ci_low"], scores["rougeL_ci_high"]) == (0.0, 1.0)  # 3 very different pairs


def test_bootstrap_interval_known_answers() -> None:
    assert bootstrap_interval([0.2] * 40) == (0.2, 0.2)
    # Half zeros, half ones: the mean's standard error is 0.5 / sqrt(100) = 0.05, so about 0.5 ± 0.098.
    low, high = bootstrap_interval([0.0, 1.0] * 50)
    assert low == pytest.approx(0.402, abs=0.015) and high == pytest.approx(0.598, abs=0.015)
    # Four times the data halves the width; the same seed gives the same interval.
    low4, high4 = bootstrap_interval([0.0, 1.0] * 200)
    assert (high4 - low4) == pytest.approx((high - low) / 2, rel=0.15)
    assert bootstrap_interval([0.0, 1.0] * 50) == (low, high)


def test_an_empty_candidate_scores_zero_without_dividing_by_zero() -> None:
    scores = score_summaries([""], ["the cat sat"], [SOURCE])
    assert (scores["rougeL"], scores["words"], scores["sentences"], scores["compression"]) == (0, 0, 0, 12)


@pytest.mark.parametrize(
    ("candidates", "references", "sources"),
    [(["a"], ["a", "b"], ["s"]), (["a", "b"], ["a", "b"], ["s"]), ([], [], [])],
)
def test_mismatched_or_empty_inputs_are_refused(
    candidates: list[str], references: list[str], sources: list[str]
) -> None:
    with pytest.raises(ValueError, match=r"candidate|no summaries"):
        score_summaries(candidates, references, sources)
