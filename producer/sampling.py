"""Stratified sampling and train/test splitting by label, deterministic for a given seed.

A file with `--sample-frac`/`--split` is read twice: the first pass keeps only each clean row's stratum
(`strata_of`), `selection` decides from those, and the second pass enqueues the rows chosen (`Selection`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from chatlens.core.labels import LABELS
from producer.cleaning import Ready, RowRules
from producer.rows import RawRow

# A clean row's stratum is its label's code, numbered in the labels' sort order (unlabelled first): one
# byte a row in the first pass, where a list of 2M label strings would pin ~100 MB of small objects.
_UNLABELLED = "\x00unlabelled"
_STRATUM = {
    (None if name == _UNLABELLED else name): code for code, name in enumerate(sorted([_UNLABELLED, *LABELS]))
}
LEFT_OUT, TRAIN, TEST = 0, 1, 2  # a clean row's part: not sampled, in the train part (or `all`), in the test


@dataclass(frozen=True)
class Sample:
    sample_frac: float
    test_frac: float
    seed: int
    split: str  # all, train or test


def strata_mask(strata: np.ndarray, frac: float, seed: int) -> np.ndarray:
    """True for round(frac * n) rows of every stratum (unlabelled rows form a stratum of their own),
    taken in the strata's sort order from one seeded generator."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(strata), dtype=bool)
    for stratum in sorted(set(strata.tolist())):
        where = np.flatnonzero(strata == stratum)
        take = round(frac * len(where))
        mask[rng.permutation(where)[:take]] = True
    return mask


@dataclass(frozen=True)
class Parts:
    """Each clean row's part (LEFT_OUT, TRAIN or TEST), one byte per row in input order, and the part
    that is enqueued."""

    parts: bytes
    wanted: int

    @property
    def chosen(self) -> int:
        return self.parts.count(self.wanted)


def strata_of(rows: Iterable[RawRow], max_chars: int) -> np.ndarray:
    """The first pass: the stratum of each row the cleaning rules keep, in input order."""
    rules = RowRules(max_chars, lambda reject: None)
    codes = bytearray()
    for raw in rows:
        ready = rules.accept(raw)
        if ready is not None:
            codes.append(_STRATUM[ready[4]])
    return np.frombuffer(bytes(codes), dtype=np.uint8)


def selection(strata: np.ndarray, sample: Sample) -> Parts:
    """Each clean row's part from its stratum alone: first the stratified sample, then the stratified
    split of the sample (another seed, so that the two are independent)."""
    sampled = (
        strata_mask(strata, sample.sample_frac, sample.seed)
        if sample.sample_frac < 1.0
        else np.ones(len(strata), dtype=bool)
    )
    parts = np.where(sampled, TRAIN, LEFT_OUT).astype(np.int8)
    if sample.split != "all":
        where = np.flatnonzero(sampled)
        parts[where[strata_mask(strata[where], sample.test_frac, sample.seed + 1)]] = TEST
    return Parts(parts.tobytes(), TEST if sample.split == "test" else TRAIN)


class Selection:
    """The second pass: whether each clean row, in input order, is enqueued; `on_part` sees every row of
    the sample with its part (the --out-dir files of a split)."""

    def __init__(self, parts: Parts, on_part: Callable[[int, Ready], None] | None = None) -> None:
        self.parts, self.wanted, self.on_part = parts.parts, parts.wanted, on_part
        self.index = 0

    def take(self, ready: Ready) -> bool:
        part = self.parts[self.index]
        self.index += 1
        if part != LEFT_OUT and self.on_part is not None:
            self.on_part(part, ready)
        return part == self.wanted
