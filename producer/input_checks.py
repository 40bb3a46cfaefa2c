"""The checks on an input as a whole, run on its head (the first bytes, up to `HEAD_BYTES`) before any
row is read: a file and stdin get the same answer, because they are the same checks on the same bytes.

Empty, not UTF-8 (UTF-16, binary, another encoding), a separator other than the comma, a repeated or
missing column, mostly-ragged CSV, mostly-non-JSON JSON Lines, a header with no rows, an unreadable
Parquet file: one `ChatlensError` line each. Problems of single rows are left to `cleaning`.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chatlens.core.errors import ChatlensError
from producer.rows import Columns, Format, check_columns, sniff_format

HEAD_BYTES = 1 << 16
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # the bytes that were not UTF-8, under surrogateescape


@dataclass(frozen=True)
class Head:
    data: bytes
    ended: bool  # the input ended within the head: `data` is all of it


def read_head(read: Callable[[int], bytes], ready: Callable[[], bool]) -> Head:
    """Up to HEAD_BYTES: at least the first non-blank line, then whatever more is there without waiting
    (all of a file's head; what a pipe holds now, so a live stream is not held up)."""
    data = b""
    while len(data) < HEAD_BYTES:
        chunk = read(HEAD_BYTES - len(data))
        if not chunk:
            return Head(data, ended=True)
        data += chunk
        if b"\n" in data.lstrip() and not ready():
            break
    return Head(data, ended=False)


def check_head(head: Head, fmt: Format | None, columns: Columns, source: str) -> Format:
    """The input's format (as given, else sniffed), once its head passes every check."""
    data = head.data
    if not data.strip():
        if head.ended:
            raise ChatlensError(f"{source}: the input is empty; give a header row and at least one message")
        return fmt or Format.csv  # a head of blanks only: nothing to check yet
    if data[:2] in _UTF16_BOMS or _looks_utf16(data[:4096]):
        raise ChatlensError(
            f"{source}: not UTF-8 text (UTF-16 or binary); re-save it as UTF-8, e.g. iconv -f UTF-16 -t UTF-8"
        )
    fmt = fmt or sniff_format(data)
    if fmt is Format.parquet:
        return fmt  # binary: `open_parquet` checks it
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    # Whole lines only: the head may end inside a line, or inside a character.
    complete = text if head.ended else text[: text.rfind("\n") + 1]
    lines = complete.splitlines()
    bad = sum(1 for line in lines if _UNDECODABLE.search(line))
    if lines and (_UNDECODABLE.search(lines[0]) or bad > len(lines) / 2):
        raise ChatlensError(
            f"{source}: not UTF-8 ({bad} of {len(lines)} lines have invalid bytes); "
            "convert it, e.g. iconv -f LATIN1 -t UTF-8"
        )
    if fmt is Format.jsonl:
        _check_jsonl(complete, head.ended, columns, source)
    else:
        _check_csv(complete, head.ended, columns, source)
    return fmt


def _looks_utf16(head: bytes) -> bool:
    # UTF-16 (or a binary file) has a NUL in every other byte of its ASCII; a UTF-8 input with a stray
    # NUL in a message is valid UTF-8, and only the rows holding one are rejected (in `cleaning`).
    return len(head) >= 2 and head.count(0) > len(head) // 4


def _check_csv(text: str, ended: bool, columns: Columns, source: str) -> None:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[list[str]] = []
    previous = csv.field_size_limit(2**31 - 1)
    try:
        rows.extend(row for row in reader if row)
    except csv.Error as exc:
        if ended:  # else the head may have cut a quoted field short: the parser reads on
            raise ChatlensError(
                f"{source}: not a valid CSV (line {reader.line_num}: {exc}); check the quoting of that line"
            ) from None
    finally:
        csv.field_size_limit(previous)
    if not rows:
        return
    header, body = rows[0], rows[1:]
    if len(header) == 1:
        for separator, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if separator in header[0]:
                raise ChatlensError(
                    f"{source}: the header looks {name}-separated ({header[0][:60]!r}); chatlens reads "
                    "comma-separated CSV: re-save it with commas, or as JSONL/Parquet"
                )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ChatlensError(
            f"{source}: column(s) {', '.join(repr(n) for n in repeated)} appear more than once in the "
            "header; give every column a distinct name"
        )
    check_columns(header, columns, source)
    ragged = sum(1 for row in body if len(row) != len(header))
    if body and ragged > len(body) / 2:
        raise ChatlensError(
            f"{source}: not a valid CSV ({ragged} of {_rows(len(body), ended)} do not have the header's "
            f"{len(header)} fields); give a comma-separated file with a header row"
        )
    if ended and not body:
        raise no_rows(source)


def _check_jsonl(text: str, ended: bool, columns: Columns, source: str) -> None:
    found: dict[str, None] = {}  # the keys of the head's objects, in order of first appearance
    lines = bad = 0
    loads = json.JSONDecoder().decode
    for line in text.split("\n"):
        if not line.strip():
            continue
        lines += 1
        try:
            value = loads(line)
        except ValueError:
            value = None
        if isinstance(value, dict):
            found.update(dict.fromkeys(value))
        else:
            bad += 1
    if bad > lines / 2:
        raise ChatlensError(
            f"{source}: not valid JSON Lines ({bad} of {_rows(lines, ended, 'lines')} are not JSON objects); "
            'each line must be one object such as {"conversation_id": 1, "message": "..."}'
        )
    if found:
        check_columns(list(found), columns, source)


def _rows(count: int, ended: bool, noun: str = "rows") -> str:
    return f"{count} {noun}" if ended else f"the first {count} {noun}"


def no_rows(source: str) -> ChatlensError:
    return ChatlensError(f"{source}: has a header but no rows; give at least one message")


def open_parquet(path: Path, columns: Columns, source: str) -> bool:
    """Check a Parquet file before its rows are read: readable, the columns there, rows in it. Returns
    whether it has the label column."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
    except PermissionError as exc:
        raise ChatlensError(f"{source}: cannot be read ({exc.strerror}); check its permissions") from None
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise ChatlensError(
            f"{source}: not a readable Parquet file ({type(exc).__name__}); check the file"
        ) from None
    names = meta.schema.to_arrow_schema().names
    check_columns(names, columns, source)
    if meta.num_rows == 0:
        raise no_rows(source)
    return columns.label in names
