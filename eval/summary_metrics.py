"""Scoring summaries against reference summaries: ROUGE F-measures plus length and compression."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import fmean

from rouge_score import rouge_scorer

from worker.summariser import split_sentences

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def score_summaries(
    candidates: Sequence[str], references: Sequence[str], sources: Sequence[str]
) -> dict[str, float]:
    """Means over the summaries of `rouge1`, `rouge2`, `rougeL` (F-measure, stemmed), `words`,
    `sentences` and `compression` (source words per summary word), each rounded to 4 places."""
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
    return {name: round(fmean(values), 4) for name, values in totals.items()}
