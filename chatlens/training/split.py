"""`split_conversations`: one seeded split of a labelled file by conversation, written as two files.

The held-out part is whole conversations with their turns in the file's order: the evaluation set for
anything that reads a message's context (a model fed a conversation in order sees each previous turn), and
never trained on. The conversations held out are a seeded permutation of the file's sorted conversation
ids (the trainers' `grouped_indices`), so they depend on the file, the fraction and the seed alone. Rows
are copied as they are, header and column order included: the two files are the input split, not a cleaned
copy, and cleaning happens again wherever they are read.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chatlens.core.errors import ChatlensError
from chatlens.training.data import grouped_indices

# The documented split of ../shared/data/topical-chat-valid/valid.csv: 30 % of its conversations held out.
HELD_OUT_FRAC = 0.3
SEED = 22


@dataclass(frozen=True)
class SplitFiles:
    train: Path
    held_out: Path
    train_rows: int
    held_out_rows: int
    train_conversations: int
    held_out_conversations: int


def split_conversations(
    path: Path, out_dir: Path, frac: float = HELD_OUT_FRAC, seed: int = SEED, column: str = "conversation_id"
) -> SplitFiles:
    """Write OUT_DIR/<stem>-train.csv (the rest) and OUT_DIR/<stem>-heldout.csv (a seeded `frac` of the
    conversations), both in PATH's row order."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ChatlensError(f"{path}: cannot read as UTF-8 CSV ({exc})") from exc
    if header is None or column not in header:
        raise ChatlensError(f"{path}: no {column!r} column to split by")
    at = header.index(column)
    groups = np.asarray([row[at] if at < len(row) else "" for row in rows], dtype=object)
    if len(set(groups.tolist())) < 2:
        raise ChatlensError(f"{path}: fewer than 2 conversations, nothing to hold out")
    train, held = grouped_indices(groups, frac, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for part, index in (("train", train), ("heldout", held)):
        target = out_dir / f"{path.stem}-{part}.csv"
        partial = target.with_suffix(".csv.partial")
        with partial.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(rows[i] for i in index)
        written.append(target)
        partial.replace(target)
    return SplitFiles(
        written[0], written[1], len(train), len(held),
        len(set(groups[train].tolist())), len(set(groups[held].tolist())),
    )  # fmt: skip
