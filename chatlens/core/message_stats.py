"""A group of new messages' share of a run's running stats (the order-free dataset hash and the
labelled count), as BITFIELD increments the producer adds in its own pipeline."""

from __future__ import annotations

import hashlib


class MessageStats:
    """A group of new messages' share of the run's stats: wrapping sums of a 128-bit digest of each
    (id, label), so the dataset hash does not depend on the order messages arrive in, and the labelled."""

    def __init__(self) -> None:
        self.low = 0
        self.high = 0
        self.labelled = 0

    def add(self, message_id: str, label: str | None) -> None:
        value = int.from_bytes(
            hashlib.blake2b(f"{message_id}\x1f{label or ''}".encode(), digest_size=16).digest()
        )
        self.low += value & _MASK64
        self.high += value >> 64
        self.labelled += label is not None

    def increments(self) -> list[object]:
        return [
            *("INCRBY", "i64", 0, _signed(self.low)),
            *("INCRBY", "i64", 64, _signed(self.high)),
            *("INCRBY", "i64", 128, self.labelled),
        ]


_MASK64 = 2**64 - 1


def _signed(value: int) -> int:
    value &= _MASK64
    return value - 2**64 if value >= 2**63 else value
