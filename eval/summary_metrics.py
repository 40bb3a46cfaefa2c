"""Scoring summaries against reference summaries: ROUGE F-measures plus length and compression."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import fmean

import numpy as np
from rouge_score import rouge_scorer

from chatlens.backends.summariser import split_sentences

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
BOOTSTRAP_RESAMPLES = 2000


def bootstrap_interval(values: Sequence[float], level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (resampled conversations, fixed seed).

    A mean ROUGE-L over a hundred or so references is uncertain in the second decimal
    (docs/models/extractive.md, "Quality"): a target or a comparison closer than its interval is within
    the noise, and the report says so rather than print one bare number."""
    data = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(BOOTSTRAP_RESAMPLES, len(data)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def score_summaries(
    candidates: Sequence[str], references: Sequence[str], sources: Sequence[str]
) -> dict[str, float]:
    """Means over the summaries of `rouge1`, `rouge2`, `rougeL` (F-measure, stemmed), `words`,
    `sentences` and `compression` (source words per summary word), and the 95% bootstrap interval of the
    ROUGE-L mean (`rougeL_ci_low`, `rougeL_ci_high`), each rounded to 4 places."""
    if not len(candidates) == len(references) == len(sources):
        raise ValueError(
            f"need one reference and one source per candidate: got {len(candidates)} candidates, "
            f"{len(references)} references and {len(sources)} sources"
        )
    if not candidates:
        raise ValueError("no summaries to score")
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    totals: dict[str, list[float]] = {
        name: [] for name in (*ROUGE_TYPES, "words", "sentences", "compression")
    }
    for candidate, reference, source in zip(candidates, references, sources, strict=True):
        # RougeScorer.score takes (target, prediction).
        scores = scorer.score(reference, candidate)
        for name in ROUGE_TYPES:
            totals[name].append(scores[name].fmeasure)
        words = len(candidate.split())
        totals["words"].append(words)
        totals["sentences"].append(len(split_sentences(candidate)))
        # An empty summary compresses nothing away usefully; count it as one word rather than divide by 0.
        totals["compression"].append(len(source.split()) / max(words, 1))
    means = {name: fmean(values) for name, values in totals.items()}
    means["rougeL_ci_low"], means["rougeL_ci_high"] = bootstrap_interval(totals["rougeL"])
    return {name: round(value, 4) for name, value in means.items()}


def rouge_l_per_summary(candidates: Sequence[str], references: Sequence[str]) -> list[float]:
    """ROUGE-L F-measure (stemmed) of each candidate against its reference, in order."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(r, c)["rougeL"].fmeasure for c, r in zip(candidates, references, strict=True)]


def paired_rouge_l(outputs: Mapping[str, Sequence[str]], references: Sequence[str]) -> list[dict]:
    """Every pair of systems scored on the same conversations: the mean per-conversation ROUGE-L
    difference and its 95% paired bootstrap interval, the better system first (so the difference is
    positive), the pairs in the order the systems are given."""
    scores = {name: rouge_l_per_summary(texts, references) for name, texts in outputs.items()}
    pairs = []
    names = list(scores)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            first, second = (a, b) if fmean(scores[a]) >= fmean(scores[b]) else (b, a)
            mean, low, high = paired_difference(scores[first], scores[second])
            pairs.append(
                {
                    "first": first,
                    "second": second,
                    "rougeL_difference": round(mean, 4),
                    "ci_low": round(low, 4),
                    "ci_high": round(high, 4),
                }
            )
    return pairs


def paired_difference(
    first: Sequence[float], second: Sequence[float], level: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """(mean of first - second, its bootstrap interval): per-conversation scores of two systems on the same
    conversations. Pairing removes the variance the conversations share, so a difference can be
    significant although the two systems' own intervals overlap."""
    if len(first) != len(second) or not first:
        raise ValueError(f"need two equally long, non-empty lists: got {len(first)} and {len(second)}")
    differences = [a - b for a, b in zip(first, second, strict=True)]
    low, high = bootstrap_interval(differences, level, seed)
    return float(np.mean(differences)), low, high
