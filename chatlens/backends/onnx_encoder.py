"""`OnnxEncoder`: an exported encoder (chatlens.backends.onnx_export) run by onnxruntime, torch-free.

An export is a directory: `model.onnx` (the encoder with every hidden state's masked mean, each
L2-normalised, computed in the graph), `tokenizer.json` (the encoder's fast tokenizer) and
`manifest.json` (`Manifest`: what it was exported from, by SHA-256, and how it compared with torch).
Before a graph is served its files are hashed against the manifest and the manifest against the weights,
adapter and head the settings name; anything that differs is refused in one line naming the file and the
command that rebuilds it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ValidationError

from chatlens.backends.encoder_source import Pooling, file_sha256
from chatlens.core.errors import ChatlensError

MANIFEST = "manifest.json"
GRAPH = "model.onnx"
TOKENIZER = "tokenizer.json"
FORMAT = 1
# Padded tokens per batch (a batch of 32 messages of 64 tokens): short chat messages batch by 32 as with
# torch; long ones in smaller batches, which bounds the attention scores the graph holds at once.
MAX_BATCH_TOKENS = 2048

Precision = Literal["fp32", "int8"]


class ProbeCheck(BaseModel):
    """The export against torch fp32 on the fixed probe set, with the head it was built for."""

    messages: int
    max_feature_diff: float  # largest absolute difference of any feature
    min_cosine: float  # the least similar message's features, cosine
    label_agreement: float | None  # share of the probe messages given torch's label; None = no head


class Tolerance(BaseModel):
    max_feature_diff: float | None  # None: not bounded (int8 moves every feature a little)
    min_cosine: float
    min_label_agreement: float


class Manifest(BaseModel):
    format: int
    name: str  # the export's name in `chatlens models export NAME`: default, accurate, extractive
    encoder: str  # the model id results record (with +lora-<hash> when an adapter is merged)
    precision: Precision
    quantization: str  # how the int8 graph was made; "none" for fp32
    weights_sha256: str | None  # the source weights file
    adapter_sha256: str | None
    head_sha256: str | None  # the head the label agreement was measured with
    graph_sha256: str
    tokenizer_sha256: str
    hidden_size: int
    layers: int  # hidden states in the graph's output: the embeddings + each layer
    model_max_length: int
    pad_token_id: int
    probe: ProbeCheck
    tolerance: Tolerance
    built_with: dict[str, str]  # library versions
    created: str


class Expected(BaseModel):
    """What the settings name, to hold a manifest against. None = not known on this host (a slim host
    has no source weights: the graph is what it serves) or not applicable (no adapter, no head)."""

    weights_sha256: str | None
    adapter_sha256: str | None
    head_sha256: str | None
    head_dir: Path | None = None


def rebuild_command(name: str, precision: Precision) -> str:
    return f"chatlens models export {name}" + (" --int8" if precision == "int8" else "")


def read_manifest(directory: Path, name: str, precision: Precision) -> Manifest:
    path = directory / MANIFEST
    how = f"rebuild it with `{rebuild_command(name, precision)}` on a host with chatlens[worker]"
    if not path.is_file():
        raise ChatlensError(f"{path}: no ONNX export of {name!r} ({precision}) here; {how}")
    try:
        manifest = Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as exc:
        reason = str(exc).splitlines()[0]
        raise ChatlensError(f"{path}: not a readable export manifest ({reason}); {how}") from None
    if manifest.format != FORMAT:
        raise ChatlensError(f"{path}: export format {manifest.format}, this chatlens reads {FORMAT}; {how}")
    return manifest


def check_export(directory: Path, manifest: Manifest, expected: Expected) -> None:
    """Refuse a graph whose files or sources differ from what its manifest says and the settings name."""
    how = f"rebuild it with `{rebuild_command(manifest.name, manifest.precision)}`"
    path = directory / MANIFEST
    for file, pinned in ((GRAPH, manifest.graph_sha256), (TOKENIZER, manifest.tokenizer_sha256)):
        if not (directory / file).is_file():
            raise ChatlensError(f"{directory / file}: missing from the export ({path}); {how}")
        if file_sha256(directory / file) != pinned:
            raise ChatlensError(
                f"{directory / file}: SHA-256 differs from its manifest ({path}): corrupt or replaced; {how}"
            )
    if expected.weights_sha256 is not None and manifest.weights_sha256 != expected.weights_sha256:
        raise ChatlensError(
            f"{path}: exported from other weights of {manifest.encoder} than this host's "
            f"(SHA-256 {_short(manifest.weights_sha256)}, here {_short(expected.weights_sha256)}); {how}"
        )
    if manifest.adapter_sha256 != expected.adapter_sha256:
        raise ChatlensError(
            f"{path}: exported with adapter {_short(manifest.adapter_sha256)}, the settings name "
            f"{_short(expected.adapter_sha256)}; {how}"
        )
    if expected.head_sha256 is not None and manifest.head_sha256 != expected.head_sha256:
        raise ChatlensError(
            f"{path}: checked with head {_short(manifest.head_sha256)}, the classifier serves head "
            f"{_short(expected.head_sha256)} ({expected.head_dir}); {how}"
        )


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "none"


class OnnxEncoder:
    """The same interface and features as chatlens.backends.encoder.SentenceEncoder, from an export."""

    def __init__(
        self,
        directory: Path,
        manifest: Manifest,
        max_length: int = 256,
        batch_size: int = 32,
        threads: int | None = None,
        max_batch_tokens: int = MAX_BATCH_TOKENS,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.directory = directory
        self.manifest = manifest
        self.model_id = manifest.encoder
        self.runtime = "onnx-int8" if manifest.precision == "int8" else "onnx"
        self.max_length = min(max_length, manifest.model_max_length)
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.hidden_size = manifest.hidden_size
        self.layers = manifest.layers
        self.tokenizer = Tokenizer.from_file(str(directory / TOKENIZER))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: onnxruntime's default, one per core
        options.inter_op_num_threads = 1
        # Batches vary in length: memory patterns planned for one shape are waste for the next.
        options.enable_mem_pattern = False
        self.session = ort.InferenceSession(
            str(directory / GRAPH), options, providers=["CPUExecutionProvider"]
        )

    def dim(self, pooling: Pooling) -> int:
        return self.hidden_size * (self.layers if pooling is Pooling.LAYER_MEANS else 1)

    def _ids(self, texts: list[str], special_tokens: bool, truncate: bool) -> list[list[int]]:
        if truncate:
            self.tokenizer.enable_truncation(max_length=self.max_length)
        try:
            encodings = self.tokenizer.encode_batch(texts, add_special_tokens=special_tokens)
        finally:
            self.tokenizer.no_truncation()
        return [e.ids for e in encodings]

    def encode(self, texts: list[str], pooling: Pooling = Pooling.MEAN) -> np.ndarray:
        """Features in input order. Texts are tokenised once, sorted by token count, padded per batch."""
        out = np.empty((len(texts), self.dim(pooling)), dtype=np.float32)
        if not texts:
            return out
        ids = self._ids(texts, special_tokens=True, truncate=True)
        order = np.argsort([len(x) for x in ids], kind="stable")
        # The graph's output is every layer's mean; MEAN pooling is its last block (the last layer).
        start_column = 0 if pooling is Pooling.LAYER_MEANS else (self.layers - 1) * self.hidden_size
        for chunk in self._batches([len(ids[i]) for i in order], order):
            width = max(len(ids[i]) for i in chunk)
            input_ids = np.full((len(chunk), width), self.manifest.pad_token_id, dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):
                input_ids[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            (features,) = self.session.run(None, {"input_ids": input_ids, "attention_mask": mask})
            out[chunk] = features[:, start_column:]
        return out

    def _batches(self, lengths: list[int], order: np.ndarray) -> list[np.ndarray]:
        """Consecutive runs of the length-sorted messages: at most batch_size messages, and at most
        max_batch_tokens padded tokens. The graph holds each layer's attention scores in full (messages x
        heads x tokens^2), so a batch of long messages is cut shorter to bound the process's memory."""
        batches, start = [], 0
        while start < len(order):
            end = start + 1
            while (
                end < len(order)
                and end - start < self.batch_size
                and (end - start + 1) * lengths[end] <= self.max_batch_tokens
            ):
                end += 1
            batches.append(order[start:end])
            start = end
        return batches

    def token_counts(self, texts: list[str], special_tokens: bool = True) -> list[int]:
        """As SentenceEncoder.token_counts: cut at max_length with the special tokens, whole without."""
        return [len(x) for x in self._ids(texts, special_tokens, truncate=special_tokens)]
