"""Cleaning, one row at a time: drop missing and duplicate rows, reject malformed ones, number each
row's position in its conversation. Every row is accounted for."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from chatlens.core.labels import LABELS
from chatlens.core.schemas import message_id
from producer.context import PreviousTurns
from producer.rows import RawRow

# A row that passed: (id, conversation id, position, text, label, previous turn or None).
Ready = tuple[str, str, int, str, str | None, str | None]

_CANONICAL_LABELS = {label.casefold(): label for label in LABELS}
_EXACT_LABELS = frozenset(LABELS)


@dataclass(frozen=True)
class Reject:
    row: int
    field: str
    reason: str
    conversation_id: str | None
    message: str


def check_row(
    row: int, conversation_id: object, message: object, label: object, problem: str | None, max_chars: int
) -> tuple[bool, str | None, Reject | None]:
    """One row: (missing, canonical label, reject)."""
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
    if isinstance(value, float) and value != value:  # NaN
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


class RowRules:
    """The cleaning rules over a sequence of rows: position counters per conversation, the fingerprints
    of the (conversation, message, label) rows seen, and what was dropped.

    A row's position is its index in its conversation in input order, counted before any row is
    dropped, so that message ids stay the same whatever sample or split is later taken of the input.
    """

    def __init__(
        self, max_chars: int, on_reject: Callable[[Reject], None], context: PreviousTurns | None = None
    ) -> None:
        self.max_chars, self.on_reject = max_chars, on_reject
        self.context = context or PreviousTurns()
        self.positions: dict[object, int] = {}
        self.seen: set[int] = set()
        self.read = self.dropped_missing = self.dropped_duplicate = 0

    def accept(self, raw: RawRow) -> Ready | None:
        row, cid, message, label, problem = raw
        self.read += 1
        # A non-scalar id (rejected below) is counted under its repr: a dict or list is no dict key.
        key = cid if cid is None or type(cid) is str else repr(cid)
        position = self.positions.get(key, 0)
        self.positions[key] = position + 1
        missing, canonical, reject = check_row(row, cid, message, label, problem, self.max_chars)
        if missing:
            self.dropped_missing += 1
            return None
        if reject is not None:
            self.on_reject(reject)
            return None
        fingerprint = hash((cid, message, canonical))
        if fingerprint in self.seen:
            self.dropped_duplicate += 1
            return None
        self.seen.add(fingerprint)
        # check_row passed: the id and the message are str
        previous = self.context.observe(cid, message)  # type: ignore[arg-type]
        return message_id(cid, position, message), cid, position, message, canonical, previous  # type: ignore[arg-type, return-value]
