"""Stratified sampling and train/test splitting by label, deterministic for a given seed."""

from __future__ import annotations

import numpy as np
import pandas as pd

_UNLABELLED = "\x00unlabelled"


def _stratified_mask(frame: pd.DataFrame, frac: float, seed: int) -> np.ndarray:
    """True for round(frac * n) rows of every label (unlabelled rows form a stratum of their own)."""
    return strata_mask(frame["label"].fillna(_UNLABELLED).to_numpy(), frac, seed)


def strata_mask(strata: np.ndarray, frac: float, seed: int) -> np.ndarray:
    """The mask of `_stratified_mask` from the strata alone: any values that sort as the labels do (a
    file too large for a frame passes small integer codes, numbered in the labels' sort order)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(strata), dtype=bool)
    for stratum in sorted(set(strata.tolist())):
        where = np.flatnonzero(strata == stratum)
        take = round(frac * len(where))
        mask[rng.permutation(where)[:take]] = True
    return mask


def stratified_sample(frame: pd.DataFrame, frac: float, seed: int) -> pd.DataFrame:
    if frac >= 1.0:
        return frame
    return frame[_stratified_mask(frame, frac, seed)].reset_index(drop=True)


def stratified_split(frame: pd.DataFrame, test_frac: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    # A different stream from the sample's, so sampling then splitting with one seed is not correlated.
    is_test = _stratified_mask(frame, test_frac, seed + 1)
    return frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True)


def selection(
    labels: list[str | None], sample_frac: float, test_frac: float, seed: int, split: str
) -> np.ndarray:
    """Which clean rows `stratified_sample` then `stratified_split` keep, as one mask over the rows in
    file order, from their labels alone: the first pass of a file read twice (the second enqueues)."""
    names = sorted({_UNLABELLED if label is None else label for label in labels})
    code = {name: i for i, name in enumerate(names)}
    strata = np.fromiter(
        (code[_UNLABELLED if v is None else v] for v in labels), dtype=np.int16, count=len(labels)
    )
    keep = strata_mask(strata, sample_frac, seed) if sample_frac < 1.0 else np.ones(len(strata), dtype=bool)
    if split != "all":
        sampled = np.flatnonzero(keep)
        is_test = strata_mask(strata[sampled], test_frac, seed + 1)
        keep[sampled] = is_test if split == "test" else ~is_test
    return keep
