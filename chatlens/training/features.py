"""Frozen-encoder features of the training rows, cached on disk and resumable.

Encoding is the one expensive step of training a head (all-mpnet-base-v2 on a CPU: about 0.17 CPU
seconds a message), while the head choices after it take seconds. The cache is keyed by everything the
features depend on (encoder, pooling, max length, the texts in order), so a changed file or setting
never reads stale features. It is written chunk by chunk: an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from chatlens.backends.encoder_source import Pooling
from chatlens.backends.runtime import Encoder

Progress = Callable[[str, int, int], None]  # (stage, done, total)
CHUNK = 512


def cache_key(model_id: str, pooling: Pooling, max_length: int, texts: list[str]) -> str:
    digest = hashlib.sha256(f"{model_id}\n{pooling.value}\n{max_length}\n".encode())
    for text in texts:
        digest.update(text.encode() + b"\x00")
    return digest.hexdigest()[:24]


def featurise(
    encoder: Encoder,
    texts: list[str],
    pooling: Pooling,
    progress: Progress,
    cache_dir: Path | None = None,
) -> np.ndarray:
    """Features in input order, read from / written to `cache_dir` when given."""
    if cache_dir is None:
        out = np.empty((len(texts), encoder.dim(pooling)), dtype=np.float32)
        _encode_chunks(encoder, texts, pooling, progress, out, 0, lambda done: None)
        return out
    # The runtime is part of the key: int8 features are not fp32 features.
    key = cache_key(f"{encoder.model_id}+{encoder.runtime}", pooling, encoder.max_length, texts)
    final = cache_dir / f"{key}.npy"
    if final.exists():
        progress("encode (cached)", len(texts), len(texts))
        return np.load(final)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial, state = cache_dir / f"{key}.partial.npy", cache_dir / f"{key}.json"
    shape = (len(texts), encoder.dim(pooling))
    resume = partial.exists() and state.exists()
    out = np.lib.format.open_memmap(partial, mode="r+" if resume else "w+", dtype=np.float32, shape=shape)
    start = json.loads(state.read_text())["done"] if resume else 0

    def checkpoint(done: int) -> None:
        out.flush()
        state.write_text(json.dumps({"done": done, "rows": len(texts), "model": encoder.model_id}))

    _encode_chunks(encoder, texts, pooling, progress, out, start, checkpoint)
    out.flush()
    os.replace(partial, final)
    state.unlink()
    return np.load(final)


def _encode_chunks(
    encoder: Encoder,
    texts: list[str],
    pooling: Pooling,
    progress: Progress,
    out: np.ndarray,
    start: int,
    checkpoint: Callable[[int], None],
) -> None:
    # Chunks of a fixed seeded permutation: a resumed run encodes the same chunks as an uninterrupted
    # one, and the rows done so far are a uniform sample. `encode` sorts each chunk by length.
    order = np.random.default_rng(0).permutation(len(texts))
    for begin in range(start, len(texts), CHUNK):
        end = min(begin + CHUNK, len(texts))
        rows = np.sort(order[begin:end])
        out[rows] = encoder.encode([texts[i] for i in rows], pooling)
        checkpoint(end)
        progress("encode", end, len(texts))
