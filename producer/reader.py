"""Reading CSV, JSONL and Parquet files of chat messages into one row-numbered frame.

File-level problems (missing, empty, not text, not the format, missing columns) raise `ChatlensError`
with one line that names the problem and the fix. Row-level problems are left for `cleaning` to count.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from chatlens.core.errors import ChatlensError

# Rows are decoded with surrogateescape so that one bad byte rejects one row, not the whole file.
_ENCODING_ERRORS = "surrogateescape"
# Column for a row the parser could not read whole (a CSV row with the wrong field count, a JSONL line
# that is not an object): `cleaning` rejects it with this reason.
PROBLEM = "__problem"


@dataclass(frozen=True)
class Columns:
    conversation_id: str = "conversation_id"
    message: str = "message"
    label: str = "sentiment"


def read_messages(path: Path, columns: Columns) -> pd.DataFrame:
    """Return columns row (1-based data row), conversation_id, message, label (None where absent), problem."""
    if not path.exists():
        raise ChatlensError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise ChatlensError(f"{path}: is a directory; pass a .csv, .jsonl or .parquet file")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame = _read_parquet(path)
    else:
        text = _read_text(path)
        frame = _read_jsonl(path, text) if suffix in {".jsonl", ".ndjson"} else _read_csv(path, text)
    return _select_columns(path, frame, columns)


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ChatlensError(
            f"{path}: cannot be read ({exc.strerror or exc}); check its permissions"
        ) from None
    if not data.strip():
        raise ChatlensError(
            f"{path}: the file is empty; give a file with a header row and at least one message"
        )
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or _looks_utf16(data[:4096]):
        raise ChatlensError(
            f"{path}: not UTF-8 text (UTF-16 or binary); re-save it as UTF-8, e.g. iconv -f UTF-16 -t UTF-8"
        )
    text = data.decode("utf-8", errors=_ENCODING_ERRORS).removeprefix("\ufeff")
    lines = text.splitlines()
    bad = sum(1 for line in lines if _has_invalid_utf8(line))
    if _has_invalid_utf8(lines[0]) or bad > len(lines) / 2:
        raise ChatlensError(
            f"{path}: not UTF-8 ({bad} of {len(lines)} lines have invalid bytes); "
            "convert it, e.g. iconv -f LATIN1 -t UTF-8"
        )
    return text


def _looks_utf16(head: bytes) -> bool:
    # UTF-16 (or a binary file) has a NUL in every other byte of its ASCII; a UTF-8 file with a stray
    # NUL in a message is valid UTF-8, and only the rows holding one are rejected (in `cleaning`).
    return len(head) >= 2 and head.count(0) > len(head) // 4


def _has_invalid_utf8(text: str) -> bool:
    # The bytes that were not UTF-8, decoded with surrogateescape; a regex scans in C (hot per row).
    return _UNDECODABLE.search(text) is not None


_UNDECODABLE = re.compile("[\udc80-\udcff]")


def _read_csv(path: Path, text: str) -> pd.DataFrame:
    # The csv module rather than pandas: a row with the wrong number of fields must reject that row,
    # where pandas would silently shift it into an index column or drop fields.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    # The csv module caps a field at 131,072 characters and fails the whole file past it; lift the cap
    # to the file's size, so an over-long message is read whole and rejected as one row by `cleaning`.
    previous_limit = csv.field_size_limit(max(csv.field_size_limit(), min(len(text) + 1, 2**31 - 1)))
    try:
        rows = [row for row in reader if row]
    except csv.Error as exc:
        raise ChatlensError(
            f"{path}: not a valid CSV (line {reader.line_num}: {exc}); check the quoting of that line"
        ) from exc
    finally:
        csv.field_size_limit(previous_limit)
    header, body = rows[0], rows[1:]
    if len(header) == 1:
        for separator, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if separator in header[0]:
                raise ChatlensError(
                    f"{path}: the header looks {name}-separated ({header[0][:60]!r}); chatlens reads "
                    "comma-separated CSV: re-save it with commas, or as JSONL/Parquet"
                )
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise ChatlensError(
            f"{path}: column(s) {', '.join(repr(n) for n in repeated)} appear more than once in the header; "
            "give every column a distinct name"
        )
    ragged = [i for i, row in enumerate(body) if len(row) != len(header)]
    if body and len(ragged) > len(body) / 2:
        raise ChatlensError(
            f"{path}: not a valid CSV ({len(ragged)} of {len(body)} rows do not have the header's "
            f"{len(header)} fields); give a comma-separated file with a header row"
        )
    problems: list[str | None] = [None] * len(body)
    for i in ragged:
        problems[i] = (
            f"row has {len(body[i])} fields, the header has {len(header)}; quote messages with commas"
        )
        body[i] = (body[i] + [""] * len(header))[: len(header)]
    frame = pd.DataFrame(body, columns=header, dtype=object)
    frame[PROBLEM] = pd.Series(problems, dtype=object)
    return frame


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    records: list[dict] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            records.append({**value, PROBLEM: None})
        else:
            records.append({PROBLEM: f"line {number} is not a JSON object"})
    bad = sum(1 for r in records if r[PROBLEM])
    if bad > len(records) / 2:
        raise ChatlensError(
            f"{path}: not valid JSON Lines ({bad} of {len(records)} lines are not JSON objects); "
            'each line must be one object such as {"conversation_id": 1, "message": "..."}'
        )
    return pd.DataFrame.from_records(records)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except OSError as exc:
        if isinstance(exc, PermissionError):
            raise ChatlensError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None
        raise ChatlensError(
            f"{path}: not a readable Parquet file ({type(exc).__name__}); check the file"
        ) from exc
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise ChatlensError(
            f"{path}: not a readable Parquet file ({type(exc).__name__}); check the file"
        ) from exc


def _select_columns(path: Path, frame: pd.DataFrame, columns: Columns) -> pd.DataFrame:
    found = [str(c) for c in frame.columns if c != PROBLEM]
    missing = [c for c in (columns.conversation_id, columns.message) if c not in found]
    if missing:
        shown = ", ".join(found[:6]) + (", ..." if len(found) > 6 else "")
        raise ChatlensError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {shown or 'none'}); "
            "name them with --id-column / --message-column"
        )
    if frame.empty:
        raise ChatlensError(f"{path}: has a header but no rows; give at least one message")
    n = len(frame)
    # object dtype throughout: pandas' default Arrow strings cannot hold the undecodable bytes that
    # `cleaning` must still see (and reject) row by row.
    out = pd.DataFrame(
        {
            "row": list(range(1, n + 1)),
            "conversation_id": [_conversation_id(v) for v in frame[columns.conversation_id].tolist()],
            "message": frame[columns.message].tolist(),
            "label": frame[columns.label].tolist() if columns.label in found else [None] * n,
            "problem": frame[PROBLEM].tolist() if PROBLEM in frame else [None] * n,
        },
        dtype=object,
    )
    return out


def _conversation_id(value: object) -> object:
    """A string id, None where absent, or the raw value where it is no scalar (`cleaning` rejects it)."""
    if type(value) is str:  # the common case first: this runs once per row of a stream
        return value.strip() or None
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a Parquet/JSON int column with gaps comes back as float
    text = str(value).strip()
    return text or None
