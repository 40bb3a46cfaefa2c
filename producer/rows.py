"""Parsing a stream of JSON Lines, CSV lines or Parquet row groups into raw rows, one at a time.

The whole-file reader (`producer.reader`) needs the file in memory; these parsers hold one line (or one
Parquet row group) at a time, so a stream or a file of any size is read in bounded memory. A row the
parser cannot read whole carries a problem string, which `cleaning.check_row` turns into a reject.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path

from chatlens.core.errors import ChatlensError
from producer.reader import Columns, _conversation_id

# (row number, conversation id, message, label, problem): the raw values, unchecked.
RawRow = tuple[int, object, object, object, str | None]
_FIELD_LIMIT = 2**31 - 1


class Format(StrEnum):
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


def sniff_format(first_line: str) -> Format:
    """A stream whose first non-blank line opens a JSON object is JSON Lines; anything else, CSV."""
    return Format.jsonl if first_line.lstrip().startswith("{") else Format.csv


def format_of(path: Path) -> Format | None:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return Format.parquet
    if suffix in {".jsonl", ".ndjson"}:
        return Format.jsonl
    if suffix in {".csv", ".txt"}:
        return Format.csv
    return None


def jsonl_rows(lines: Iterable[str], columns: Columns, source: str) -> Iterator[RawRow]:
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
            yield number, _conversation_id(value.get(id_key)), value.get(text_key), value.get(label_key), None
        else:
            yield number, None, "", None, f"line {number} is not a JSON object"


def csv_rows(lines: Iterable[str], columns: Columns, source: str) -> Iterator[RawRow]:
    """Comma-separated with a header row; a row with the wrong field count is one reject."""
    previous = csv.field_size_limit(_FIELD_LIMIT)
    try:
        reader = csv.reader(iter(lines), strict=True)
        try:
            header = next(reader, None)
            while header is not None and not header:
                header = next(reader, None)
        except csv.Error as exc:
            raise ChatlensError(f"{source}: the header is not valid CSV ({exc})") from None
        if header is None:
            return
        where = _header_positions(header, columns, source)
        width = len(header)
        id_at, text_at, label_at = where
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
            yield number, _conversation_id(row[id_at]), row[text_at], label, problem
    finally:
        csv.field_size_limit(previous)


def _header_positions(header: list[str], columns: Columns, source: str) -> tuple[int, int, int | None]:
    header = [h.removeprefix("\ufeff") for h in header]
    missing = [c for c in (columns.conversation_id, columns.message) if c not in header]
    if missing:
        shown = ", ".join(header[:6]) + (", ..." if len(header) > 6 else "")
        raise ChatlensError(
            f"{source}: missing column(s) {', '.join(missing)} (found: {shown or 'none'}); "
            "name them with --id-column / --message-column, or give --format"
        )
    label_at = header.index(columns.label) if columns.label in header else None
    return header.index(columns.conversation_id), header.index(columns.message), label_at


def parquet_rows(path: Path, columns: Columns) -> Iterator[RawRow]:
    """One record batch (at most a row group) in memory at a time."""
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise ChatlensError(
            f"{path}: not a readable Parquet file ({type(exc).__name__}); check the file"
        ) from None
    names = handle.schema_arrow.names
    missing = [c for c in (columns.conversation_id, columns.message) if c not in names]
    if missing:
        raise ChatlensError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(names[:6])}); "
            "name them with --id-column / --message-column"
        )
    wanted = [columns.conversation_id, columns.message] + ([columns.label] if columns.label in names else [])
    number = 0
    for batch in handle.iter_batches(batch_size=65_536, columns=wanted):
        ids = batch.column(0).to_pylist()
        texts = batch.column(1).to_pylist()
        labels = batch.column(2).to_pylist() if len(wanted) == 3 else [None] * len(ids)
        for cid, text, label in zip(ids, texts, labels, strict=True):
            number += 1
            yield number, _conversation_id(cid), text, label, None
