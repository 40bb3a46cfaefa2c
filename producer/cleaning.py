"""Cleaning: drop missing and duplicate rows, reject malformed ones. Every row is accounted for."""

from __future__ import annotations

import csv
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from chatlens.core.labels import LABELS

_CANONICAL_LABELS = {label.casefold(): label for label in LABELS}
_EXACT_LABELS = frozenset(LABELS)


@dataclass(frozen=True)
class Reject:
    row: int
    field: str
    reason: str
    conversation_id: str | None
    message: str


@dataclass
class CleanResult:
    rows: pd.DataFrame  # row, conversation_id, position, message, label
    dropped_missing: int
    dropped_duplicate: int
    rejects: list[Reject]


def clean(frame: pd.DataFrame, max_chars: int) -> CleanResult:
    frame = frame.copy()
    # Position is the turn's index in its conversation in file order, taken before any row is dropped,
    # so that message ids stay the same whatever sample or split is later taken of the same file.
    # (A non-scalar id, rejected below, is grouped by its repr: a dict or list cannot be a group key.)
    ids = frame["conversation_id"].map(lambda v: v if v is None or isinstance(v, str) else repr(v))
    frame["position"] = frame.groupby(ids.fillna("\x00"), sort=False).cumcount()

    missing = frame["message"].map(_is_missing) & frame["problem"].isna()
    dropped_missing = int(missing.sum())
    frame = frame[~missing]

    rejects: list[Reject] = []
    keep: list[bool] = []
    labels: list[str | None] = []
    for row in frame.itertuples(index=False):
        problem = (
            ("row", row.problem)
            if isinstance(row.problem, str)
            else _row_problem(row.conversation_id, row.message, max_chars)
        )
        label, label_problem = _canonical_label(row.label)
        problem = problem or label_problem
        if problem:
            field, reason = problem
            shown_id = row.conversation_id if row.conversation_id is None else _printable(row.conversation_id)
            rejects.append(Reject(row.row, field, reason, shown_id, _printable(row.message)))
        keep.append(problem is None)
        labels.append(label)
    # object dtype: pandas would infer a string column from the labels and turn None into NaN.
    frame = frame.assign(label=pd.Series(labels, index=frame.index, dtype=object))[keep]

    duplicate = frame.duplicated(subset=["conversation_id", "message", "label"], keep="first")
    dropped_duplicate = int(duplicate.sum())
    frame = frame[~duplicate].reset_index(drop=True)
    return CleanResult(
        rows=frame[["row", "conversation_id", "position", "message", "label"]],
        dropped_missing=dropped_missing,
        dropped_duplicate=dropped_duplicate,
        rejects=rejects,
    )


def position_key(conversation_id: object) -> object:
    """The group a row's position is counted in, as `clean` groups them (None and non-scalars included)."""
    if conversation_id is None or isinstance(conversation_id, str):
        return conversation_id
    return repr(conversation_id)


def check_row(
    row: int, conversation_id: object, message: object, label: object, problem: str | None, max_chars: int
) -> tuple[bool, str | None, Reject | None]:
    """One row by the rules of `clean`: (missing, canonical label, reject). A stream applies it row by
    row; `clean` applies the same checks to a whole frame."""
    if (  # the common row, decided without the general checks below (they give the same answer)
        problem is None
        and type(message) is str
        and type(conversation_id) is str
        and len(message) <= max_chars
        and (label is None or label in _EXACT_LABELS)
        and message.strip()
        and "\x00" not in message
        and "\x00" not in conversation_id
        and _UNDECODABLE.search(message) is None
        and _UNDECODABLE.search(conversation_id) is None
    ):
        return False, label, None
    if problem is None and _is_missing(message):
        return True, None, None
    found = ("row", problem) if problem is not None else _row_problem(conversation_id, message, max_chars)
    canonical, label_problem = _canonical_label(label)
    found = found or label_problem
    if found is None:
        return False, canonical, None
    shown_id = conversation_id if conversation_id is None else _printable(conversation_id)
    return False, None, Reject(row, found[0], found[1], shown_id, _printable(message))


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and pd.isna(value):
        return True
    return isinstance(value, str) and not value.strip()


def _row_problem(conversation_id: object, message: object, max_chars: int) -> tuple[str, str] | None:
    if conversation_id is None:
        return "conversation_id", "conversation_id is missing"
    if not isinstance(conversation_id, str):
        return (
            "conversation_id",
            f"conversation_id is not text or a number (got {type(conversation_id).__name__})",
        )
    if _has_invalid_utf8(conversation_id):
        return "conversation_id", "conversation_id is not valid UTF-8"
    if "\x00" in conversation_id:
        return "conversation_id", "conversation_id contains a NUL character"
    if not isinstance(message, str):
        return "message", f"message is not text (got {type(message).__name__})"
    if _has_invalid_utf8(message):
        return "message", "message is not valid UTF-8"
    if "\x00" in message:
        return "message", "message contains a NUL character (a binary or corrupted row)"
    if len(message) > max_chars:
        return "message", f"message has {len(message)} characters, over the limit of {max_chars}"
    return None


def _canonical_label(value: object) -> tuple[str | None, tuple[str, str] | None]:
    if _is_missing(value):
        return None, None
    if not isinstance(value, str):
        return None, ("sentiment", f"label is not text (got {type(value).__name__})")
    label = _CANONICAL_LABELS.get(value.strip().casefold())
    if label is None:
        return None, ("sentiment", f"unknown label {value.strip()!r}; expected one of: {', '.join(LABELS)}")
    return label, None


def _has_invalid_utf8(text: str) -> bool:
    # The bytes that were not UTF-8, decoded with surrogateescape; a regex scans in C (hot per row).
    return _UNDECODABLE.search(text) is not None


_UNDECODABLE = re.compile("[\udc80-\udcff]")


def _printable(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace")
    return text.replace("\x00", "\\x00")[:500]


def write_rejects(path: Path, rejects: list[Reject]) -> None:
    """Written whole or not at all: a temp file renamed over the target."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", newline="", encoding="utf-8", dir=path.parent, delete=False, suffix=".tmp"
    ) as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "field", "reason", "conversation_id", "message"])
        for r in rejects:
            writer.writerow([r.row, r.field, r.reason, r.conversation_id or "", r.message])
    os.replace(handle.name, path)
