"""Rejected rows of a stream, written as they come to a temp file renamed over the target at the end,
so a stream of any length holds none of them in memory and the list is never half-written."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path
from typing import IO, Any

from producer.cleaning import Reject


class RejectsFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.first: Reject | None = None
        self._handle: IO[str] | None = None
        self._writer: Any = None  # a csv writer (its type is private to the csv module)

    def add(self, reject: Reject) -> None:
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = tempfile.NamedTemporaryFile(  # noqa: SIM115  # closed in close()
                "w", newline="", encoding="utf-8", dir=self.path.parent, delete=False, suffix=".tmp"
            )
            self._writer = csv.writer(self._handle)
            self._writer.writerow(["row", "field", "reason", "conversation_id", "message"])
            self.first = reject
        self.count += 1
        self._writer.writerow(
            [reject.row, reject.field, reject.reason, reject.conversation_id or "", reject.message]
        )

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            os.replace(self._handle.name, self.path)
            self._handle = None
