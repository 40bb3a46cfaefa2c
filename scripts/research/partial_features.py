"""Use what a feature cache holds so far: `chatlens.training.features` encodes rows in chunks of a fixed
seeded permutation, so the rows of an interrupted (or still running) cache are a uniform sample of the
file. This reads that sample, read-only, without loading the encoder.

    rows, x = encoded(cache_dir, texts)   # row indices and their features (all rows once finished)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from chatlens.backends.encoder import Pooling
from chatlens.training.features import cache_key

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the bundled encoder's id, as the cache names it


def encoded(
    cache_dir: Path, texts: list[str], max_length: int = 256, runtime: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`runtime` None: a cache written before the runtime was part of the key (torch features)."""
    key = cache_key(
        MODEL_ID if runtime is None else f"{MODEL_ID}+{runtime}", Pooling.LAYER_MEANS, max_length, texts
    )
    final = cache_dir / f"{key}.npy"
    if final.exists():
        return np.arange(len(texts)), np.load(final)
    partial, state = cache_dir / f"{key}.partial.npy", cache_dir / f"{key}.json"
    if not partial.exists() or not state.exists():
        raise SystemExit(f"no cache for these {len(texts)} rows in {cache_dir} (key {key})")
    done = json.loads(state.read_text())["done"]
    rows = np.sort(np.random.default_rng(0).permutation(len(texts))[:done])
    return rows, np.array(np.load(partial, mmap_mode="r")[rows])
