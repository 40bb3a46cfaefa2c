"""`read_table`: the producer's one public reader for other layers (training, bench). A file's clean
rows as a DataFrame, read exactly as `chatlens produce` reads them (the same head checks, parser and
cleaning rules), so a message has the same id, position and label here as in a produced run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from producer.cleaning import Reject, RowRules
from producer.rows import Columns, Format, format_of
from producer.sources import FileInput, open_rows


@dataclass(frozen=True)
class Table:
    # row, id, conversation_id, position, message, label (None where unlabelled), previous (the previous
    # turn as the producer stores it, `producer.context`; None for a conversation's first turn here)
    rows: pd.DataFrame
    dropped_missing: int
    dropped_duplicate: int
    rejects: list[Reject]


def read_table(
    path: Path, columns: Columns = Columns(), max_chars: int = 10**9, fmt: Format | None = None
) -> Table:
    """The clean rows of PATH (CSV, JSONL or Parquet) in input order; a bad file raises `ChatlensError`.
    `max_chars` rejects longer messages (training reads them all by default)."""
    rejects: list[Reject] = []
    rules = RowRules(max_chars, rejects.append)
    kept = [
        (raw[0], *ready)
        for raw in open_rows(FileInput(path), fmt or format_of(path), columns)
        if (ready := rules.accept(raw)) is not None
    ]
    names = ["row", "id", "conversation_id", "position", "message", "label", "previous"]
    frame = pd.DataFrame(kept, columns=names, dtype=object)
    frame = frame.astype({"row": "int64", "position": "int64"})
    return Table(frame, rules.dropped_missing, rules.dropped_duplicate, rejects)
