"""Which extractive summary to ship: every candidate setting scored against the Llama-3-8B reference
summaries of seed-results/llama-summary.json, beside lead-3 and the seed's BART-large-cnn outputs.

    python scripts/research/summary_methods.py --data DIR [--limit N] [--threads N]

Each conversation is passed whole, as `chatlens eval-summaries` does. The figures, and the ideas tried and
dropped, are in scripts/research/README.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from chatlens.backends.summariser import split_sentences
from chatlens.backends.summarisers.extractive import ExtractiveSummariser, Selection
from eval.summary_metrics import score_summaries

DEFAULT = Selection()
UNTRIMMED = replace(DEFAULT, trim_openers=False)
# Each step adds one idea to the plain centroid ranking, so the table shows what each is worth.
CANDIDATES: dict[str, Selection] = {
    "centroid top-3": Selection(
        max_sentences=3, max_words=None, min_sentence_words=1, max_sentence_words=10_000,
        lead_weight=0.0, chat_penalty=0.0, question_bonus=0.0, trim_openers=False,
    ),
    "centroid top-3, length filter": replace(
        UNTRIMMED, max_sentences=3, max_words=None, lead_weight=0.0, chat_penalty=0.0, question_bonus=0.0
    ),
    "centroid, 45 words": replace(UNTRIMMED, lead_weight=0.0, chat_penalty=0.0, question_bonus=0.0),
    "centroid + MMR 0.3, 45 words": replace(
        UNTRIMMED, lead_weight=0.0, chat_penalty=0.0, question_bonus=0.0, diversity=0.3
    ),
    "+ lead prior": replace(UNTRIMMED, chat_penalty=0.0, question_bonus=0.0),
    "+ small-talk penalty": replace(UNTRIMMED, question_bonus=0.0),
    "+ question bonus": UNTRIMMED,
    "+ openers trimmed (default)": DEFAULT,
    "default + MMR 0.2": replace(DEFAULT, diversity=0.2),
    "default, 3 sentences": replace(DEFAULT, max_sentences=3),
    "default, 35 words": replace(DEFAULT, max_words=35),
    "default, 55 words": replace(DEFAULT, max_words=55),
}  # fmt: skip


def load(data: Path, limit: int | None) -> tuple[list[list[str]], list[str], list[str], list[str]]:
    """(turns, source text, Llama reference, BART output) per conversation, in the file's order."""
    llama = json.loads((data / "llama-summary.json").read_text())[:limit]
    bart = {
        row["conversation_id"]: row["summary"] for row in json.loads((data / "bart-summary.json").read_text())
    }
    # One "turn" holding the whole joined conversation, exactly as `chatlens eval-summaries` passes it: the
    # seed's two-space joins also occur inside turns, so splitting there would cut sentences apart.
    turns = [[row["message"]] for row in llama]
    sources = [row["message"] for row in llama]
    return turns, sources, [row["summary"] for row in llama], [bart[row["conversation_id"]] for row in llama]


def timed(
    summarise: Callable[[list[str]], str], conversations: Sequence[list[str]]
) -> tuple[list[str], float]:
    start = time.perf_counter()
    outputs = [summarise(turns) for turns in conversations]
    return outputs, (time.perf_counter() - start) / max(len(conversations), 1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", type=Path, required=True, help="dir with the seed's summaries (../shared/data/seed-results)"
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N conversations")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    turns, sources, references, bart = load(args.data, args.limit)

    rows: list[tuple[str, dict[str, float], float | None]] = []
    lead3 = [" ".join(split_sentences(source)[:3]) for source in sources]
    rows.append(("lead-3", score_summaries(lead3, references, sources), None))
    rows.append(("bart-large-cnn (seed)", score_summaries(bart, references, sources), None))
    # One MiniLM load, shared by every candidate; no sentence cache, so that each candidate's s/conv
    # counts its own encoding, not the previous candidate's.
    summariser = ExtractiveSummariser(cache_sentences=0)
    for name, selection in CANDIDATES.items():
        summariser.selection = selection
        outputs, elapsed = timed(lambda c: summariser.summarise(c).text, turns)
        rows.append((name, score_summaries(outputs, references, sources), elapsed))

    print(f"{len(turns)} conversations, references: Llama-3-8B ({args.data / 'llama-summary.json'})")
    print(f"{'method':32} rouge1  rouge2  rougeL  words  s/conv")
    for name, scores, seconds in rows:
        per_conv = f"{seconds:6.3f}" if seconds is not None else "     -"
        print(
            f"{name:32} {scores['rouge1']:.4f}  {scores['rouge2']:.4f}  {scores['rougeL']:.4f}"
            f"  {scores['words']:5.1f}  {per_conv}"
        )


if __name__ == "__main__":
    main()
