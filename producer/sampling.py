"""Stratified sampling and train/test splitting by label, deterministic for a given seed."""

from __future__ import annotations

import numpy as np
import pandas as pd

_UNLABELLED = "\x00unlabelled"


def _stratified_mask(frame: pd.DataFrame, frac: float, seed: int) -> np.ndarray:
    """True for round(frac * n) rows of every label (unlabelled rows form a stratum of their own)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(frame), dtype=bool)
    strata = frame["label"].fillna(_UNLABELLED).to_numpy()
    for stratum in sorted(set(strata)):
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
