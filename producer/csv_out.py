"""The CSV files a produce writes (the rejected rows; a split's train.csv and test.csv with --out-dir):
rows written as they come to a temp file beside the target, renamed over it when the input is done and
removed if the produce fails, so an input of any length holds none of them in memory and no file is
ever half-written."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from typing import IO, Any

from producer.cleaning import Ready, Reject
from producer.rows import Columns
from producer.sampling import TEST


class CsvOut:
    """A CSV file with a header, created at its first row."""

    def __init__(self, path: Path, header: list[str], line_end: str = "\r\n") -> None:
        self.path, self.header, self.line_end = path, header, line_end
        self.count = 0
        self._handle: IO[str] | None = None
        self._writer: Any = None  # a csv writer (its type is private to the csv module)

    def write(self, row: list[object]) -> None:
        if self._handle is None:
            self._open()
        self.count += 1
        self._writer.writerow(row)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = tempfile.NamedTemporaryFile(  # noqa: SIM115  # closed in close() / discard()
            "w", newline="", encoding="utf-8", dir=self.path.parent, delete=False, suffix=".tmp"
        )
        self._writer = csv.writer(self._handle, lineterminator=self.line_end)
        self._writer.writerow(self.header)

    def close(self, empty_too: bool = False) -> None:
        """Rename the file into place; without a row, only `empty_too` writes it (the header alone)."""
        if self._handle is None and empty_too:
            self._open()
        if self._handle is not None:
            self._handle.close()
            os.replace(self._handle.name, self.path)
            self._handle = None

    def discard(self) -> None:
        if self._handle is not None:
            self._handle.close()
            Path(self._handle.name).unlink(missing_ok=True)
            self._handle = None


class RejectsFile(CsvOut):
    def __init__(self, path: Path) -> None:
        super().__init__(path, ["row", "field", "reason", "conversation_id", "message"])
        self.first: Reject | None = None

    def add(self, reject: Reject) -> None:
        self.first = self.first or reject
        self.write([reject.row, reject.field, reject.reason, reject.conversation_id or "", reject.message])


class SplitFiles:
    """train.csv and test.csv of a split, under the input's own column names."""

    def __init__(self, out_dir: Path, columns: Columns) -> None:
        header = [columns.conversation_id, columns.message, columns.label]
        # "\n": the line ending of the input files they are cut from (and of pandas' to_csv).
        self.train = CsvOut(out_dir / "train.csv", header, line_end="\n")
        self.test = CsvOut(out_dir / "test.csv", header, line_end="\n")

    def add(self, part: int, ready: Ready) -> None:
        _, cid, _, text, label, _ = ready
        (self.test if part == TEST else self.train).write([cid, text, label])

    def close(self) -> None:
        self.train.close(empty_too=True)
        self.test.close(empty_too=True)

    def discard(self) -> None:
        self.train.discard()
        self.test.discard()
