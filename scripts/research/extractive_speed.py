"""Extractive summaries per second on whole conversations, three ways side by side on one encoder:

- `per job, no cache`: one `summarise` per conversation with the embedding cache off (what a worker did
  before the cache);
- `per job, cache`: one `summarise` per conversation, sentences cached across conversations (a worker now);
- `batched`: `summarise_many` over groups of conversations, a fresh cache per pass.

    python scripts/research/extractive_speed.py FILE.csv [--limit N] [--threads N] [--group N]

The passes alternate conversation by conversation (the batched one by group), so that load from other
processes falls on all three alike; every summary is checked against the first pass's.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from chatlens.backends.encoder import SentenceEncoder
from chatlens.backends.summarisers.extractive import ExtractiveSummariser


def conversations(path: Path, limit: int) -> list[list[str]]:
    turns: dict[str, list[str]] = defaultdict(list)
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["conversation_id"] not in turns and len(turns) >= limit:
                break
            turns[row["conversation_id"]].append(row["message"])
    return list(turns.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="CSV with conversation_id and message, turns in order")
    parser.add_argument("--limit", type=int, default=200, help="the first N conversations")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--group", type=int, default=16, help="conversations per summarise_many call")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    items = conversations(args.file, args.limit)
    encoder = SentenceEncoder()
    plain = ExtractiveSummariser(encoder, cache_sentences=0)
    cached = ExtractiveSummariser(encoder)
    batched = ExtractiveSummariser(encoder)
    plain.summarise(items[0])  # warm-up, uncounted
    seconds = {"per job, no cache": 0.0, "per job, cache": 0.0, "batched": 0.0}
    differ = {"per job, cache": 0, "batched": 0}
    for start in range(0, len(items), args.group):
        group = items[start : start + args.group]
        reference: list[str] = []
        for turns in group:
            began = time.perf_counter()
            reference.append(plain.summarise(turns).text)
            seconds["per job, no cache"] += time.perf_counter() - began
            began = time.perf_counter()
            differ["per job, cache"] += cached.summarise(turns).text != reference[-1]
            seconds["per job, cache"] += time.perf_counter() - began
        batched._cache.clear()
        began = time.perf_counter()
        texts = [r.text for r in batched.summarise_many(group)]
        seconds["batched"] += time.perf_counter() - began
        differ["batched"] += sum(a != b for a, b in zip(texts, reference, strict=True))
    base = seconds["per job, no cache"]
    print(f"{len(items)} conversations of {args.file.name}, {args.threads} torch threads")
    for name, spent in seconds.items():
        line = f"{name:18} {spent / len(items) * 1000:7.1f} ms/conversation  {len(items) / spent:6.2f} conv/s"
        line += f"  x{base / spent:.2f}"
        if name in differ:
            line += f"  summaries differing from the first pass: {differ[name]}"
        print(line)
    print(f"sentences encoded: no cache {plain.encoded}, cache {cached.encoded}")


if __name__ == "__main__":
    main()
