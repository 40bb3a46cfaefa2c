"""The format parsers: JSON Lines, CSV lines and Parquet row groups into raw rows, one at a time.

Each format has this one reader, whatever the input (a file, stdin, a followed file): it holds one line
(or one Parquet record batch) at a time, so an input of any size is read in bounded memory. A row the
parser cannot read whole carries a problem string, which `cleaning.check_row` turns into a reject.
The checks on the input as a whole (encoding, separator, columns, ...) are `input_checks`'.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from chatlens.core.errors import ChatlensError

# (row number, conversation id, message, label, problem): the raw values, unchecked.
RawRow = tuple[int, object, object, object, str | None]
_FIELD_LIMIT = 2**31 - 1
PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class Columns:
    conversation_id: str = "conversation_id"
    message: str = "message"
    label: str = "sentiment"


class Format(StrEnum):
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


def format_of(path: Path) -> Format | None:
    """The format a file's suffix names; None leaves it to the content (`sniff_format`)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return Format.parquet
    if suffix in {".jsonl", ".ndjson"}:
        return Format.jsonl
    if suffix in {".csv", ".txt"}:
        return Format.csv
    return None


def sniff_format(head: bytes) -> Format:
    """Parquet by its magic bytes; JSON Lines when the first non-blank line opens an object; else CSV."""
    if head.startswith(PARQUET_MAGIC):
        return Format.parquet
    return Format.jsonl if head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"{") else Format.csv


def conversation_id(value: object) -> object:
    """A string id, None where absent, or the raw value where it is no scalar (`cleaning` rejects it)."""
    if type(value) is str:  # the common case first: this runs once per row
        return value.strip() or None
    if value is None or (isinstance(value, float) and value != value):  # NaN
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a Parquet/JSON int column with gaps comes back as float
    text = str(value).strip()
    return text or None


def check_columns(found: Sequence[str], columns: Columns, source: str) -> None:
    """The id and message columns are there (a label column is optional)."""
    missing = [c for c in (columns.conversation_id, columns.message) if c not in found]
    if missing:
        shown = ", ".join(found[:6]) + (", ..." if len(found) > 6 else "")
        raise ChatlensError(
            f"{source}: missing column(s) {', '.join(missing)} (found: {shown or 'none'}); "
            "name them with --id-column / --message-column"
        )


def jsonl_rows(lines: Iterable[str], columns: Columns) -> Iterator[RawRow]:
    """A row per non-blank line, numbered by its line."""
    number = 0
    id_key, text_key, label_key = columns.conversation_id, columns.message, columns.label
    loads = json.JSONDecoder().decode
    for line in lines:
        number += 1
        if not line.strip():
            continue
        try:
            value = loads(line)
        except ValueError:
            value = None
        if isinstance(value, dict):
            yield number, conversation_id(value.get(id_key)), value.get(text_key), value.get(label_key), None
        else:
            yield number, None, "", None, f"line {number} is not a JSON object"


def csv_rows(lines: Iterable[str], columns: Columns, source: str) -> Iterator[RawRow]:
    """Comma-separated with a header row (checked by `input_checks`); a row with the wrong field count is
    one reject. Rows are numbered from 1 after the header, blank ones skipped."""
    # The csv module fails the whole input on a field past 131,072 characters; with the cap lifted an
    # over-long message is read whole and rejected as one row by `cleaning`.
    previous = csv.field_size_limit(_FIELD_LIMIT)
    try:
        reader = csv.reader(iter(lines), strict=True)
        try:
            header = next((row for row in reader if row), None)
        except csv.Error as exc:
            raise ChatlensError(f"{source}: the header is not valid CSV ({exc})") from None
        if header is None:
            return
        header = [name.removeprefix("\ufeff") for name in header]
        check_columns(header, columns, source)
        id_at, text_at = header.index(columns.conversation_id), header.index(columns.message)
        label_at = header.index(columns.label) if columns.label in header else None
        width = len(header)
        number = 0
        while True:
            try:
                row = next(reader, None)
            except csv.Error as exc:
                raise ChatlensError(
                    f"{source}: not a valid CSV (line {reader.line_num}: {exc}); "
                    "check the quoting of that line"
                ) from None
            if row is None:
                return
            if not row:
                continue
            number += 1
            problem = None
            if len(row) != width:
                problem = f"row has {len(row)} fields, the header has {width}; quote messages with commas"
                row = (row + [""] * width)[:width]
            label = row[label_at] if label_at is not None else None
            yield number, conversation_id(row[id_at]), row[text_at], label, problem
    finally:
        csv.field_size_limit(previous)


def parquet_rows(path: Path, columns: Columns, label: bool) -> Iterator[RawRow]:
    """One record batch (at most a row group) in memory at a time; `input_checks.open_parquet` has
    checked the file and its columns."""
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(path)
    wanted = [columns.conversation_id, columns.message] + ([columns.label] if label else [])
    number = 0
    for batch in handle.iter_batches(batch_size=65_536, columns=wanted):
        ids = batch.column(0).to_pylist()
        texts = batch.column(1).to_pylist()
        labels = batch.column(2).to_pylist() if label else [None] * len(ids)
        for cid, text, value in zip(ids, texts, labels, strict=True):
            number += 1
            yield number, conversation_id(cid), text, value, None
