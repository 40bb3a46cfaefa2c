"""`SentenceEncoder`: a transformers encoder, mean-pooled and L2-normalised, run in length-sorted batches.

The torch runtime of an encoder (CHATLENS_RUNTIME=torch|torch-int8), and what the ONNX export is checked
against. A worker opens encoders through chatlens.backends.runtime, which imports this module only when
torch is the runtime.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as transformers_logging

from chatlens.backends.encoder_source import (  # re-exported: the names training and tests import
    ADAPTER_WEIGHTS,
    BUNDLED_ENCODER_ID,
    Pooling,
    adapter_version,
    bundled_encoder_path,
    resolve_encoder,
)
from chatlens.core.errors import ChatlensError

__all__ = [
    "ADAPTER_WEIGHTS",
    "BUNDLED_ENCODER_ID",
    "Pooling",
    "SentenceEncoder",
    "adapter_version",
    "bundled_encoder_path",
    "resolve_encoder",
]


def load_pretrained(source: str, loader: type, **kwargs: object) -> Any:
    """`from_pretrained` with one clear line when the weights are neither local nor cached."""
    # A worker loads once; a per-tensor progress bar on every start is noise in its log.
    transformers_logging.disable_progress_bar()
    try:
        return loader.from_pretrained(source, **kwargs)  # type: ignore[attr-defined]
    except OSError as exc:
        where = "the local directory" if Path(source).exists() else "the Hugging Face cache"
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") else ""
        raise ChatlensError(
            f"model {source!r} could not be loaded from {where}{offline}: give a local path, "
            "or download it once into HF_HOME's cache on a machine with access and set HF_HUB_OFFLINE=1"
        ) from exc


def load_encoder_model(path: str) -> Any:
    """The encoder with SDPA attention where its architecture has it (MiniLM), eager otherwise (MPNet)."""
    try:
        return load_pretrained(path, AutoModel, attn_implementation="sdpa").eval()
    except ValueError as exc:  # transformers refuses sdpa for an architecture without it
        if "scaled_dot_product_attention" not in str(exc):
            raise
        return load_pretrained(path, AutoModel).eval()


class SentenceEncoder:
    def __init__(
        self,
        source: str | None = None,
        max_length: int = 256,
        batch_size: int = 32,
        int8: bool = False,
        models_dir: Path | None = None,
        adapter: Path | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        path, self.model_id = resolve_encoder(source, models_dir)
        self.tokenizer = load_pretrained(path, AutoTokenizer)
        self.model = load_encoder_model(path)
        if adapter is not None:
            self.model = merge_adapter(self.model, adapter, self.model_id)
            self.model_id += f"+lora-{adapter_version(adapter)}"
        if int8:
            self.model = quantize_int8(self.model)
        self.runtime = "torch-int8" if int8 else "torch"
        self.device = torch.device(device)
        self.model.to(self.device)
        self.max_length = min(max_length, self.tokenizer.model_max_length)
        self.batch_size = batch_size
        self.hidden_size = int(self.model.config.hidden_size)
        self.layers = int(self.model.config.num_hidden_layers) + 1  # + the embedding output

    def dim(self, pooling: Pooling) -> int:
        return self.hidden_size * (self.layers if pooling is Pooling.LAYER_MEANS else 1)

    @torch.inference_mode()
    def encode(self, texts: list[str], pooling: Pooling = Pooling.MEAN) -> np.ndarray:
        """Features in input order. Texts are tokenised once, sorted by token count, padded per batch."""
        out = np.empty((len(texts), self.dim(pooling)), dtype=np.float32)
        if not texts:
            return out
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        order = np.argsort([len(x) for x in ids], kind="stable")
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = self.tokenizer.pad({"input_ids": [ids[i] for i in chunk]}, return_tensors="pt")
            batch = {k: v.to(self.device) for k, v in batch.items()}
            out[chunk] = pooled_states(self.model, batch, pooling).float().cpu().numpy()
        return out

    def token_counts(self, texts: list[str], special_tokens: bool = True) -> list[int]:
        """Tokens the encoder reads of each text (cut at max_length), or of its whole text without the
        special tokens: the summariser's input and output counts."""
        if special_tokens:
            ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        else:
            ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [len(x) for x in ids]


def pooled_states(model: torch.nn.Module, batch: dict[str, torch.Tensor], pooling: Pooling) -> torch.Tensor:
    """The features a head reads: serving and adapter training both go through this one function."""
    all_layers = pooling is Pooling.LAYER_MEANS
    outputs = model(**batch, output_hidden_states=all_layers)
    states = outputs.hidden_states if all_layers else (outputs.last_hidden_state,)
    return torch.cat([mean_pool(h, batch["attention_mask"]) for h in states], dim=1)


def merge_adapter(model: torch.nn.Module, adapter: Path, model_id: str) -> torch.nn.Module:
    """Fold a LoRA adapter (peft's `save_pretrained` layout) into the encoder's weights: after the merge
    the encoder runs at exactly the frozen model's speed."""
    if not (adapter / ADAPTER_WEIGHTS).exists():
        raise ChatlensError(f"{adapter}: no LoRA adapter ({ADAPTER_WEIGHTS} missing)")
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise ChatlensError(
            f"the adapter in {adapter} needs the Python package 'peft': pip install 'chatlens[mpnet]'"
        ) from exc
    try:
        adapted = PeftModel.from_pretrained(model, str(adapter))
    except RuntimeError as exc:  # peft's load_state_dict: "size mismatch for ..." on another encoder
        config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
        raise ChatlensError(
            f"the LoRA adapter in {adapter} was trained on {config.get('base_model_name_or_path')}, "
            f"not on {model_id!r}: its weights do not fit; use the encoder it was trained for"
        ) from exc
    return adapted.merge_and_unload().eval()


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 Linear layers (CPU): weights stored in int8, activations quantised on the fly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks its eager int8 path deprecated; it still runs
        return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over tokens, then L2 normalisation (sentence-transformers' recipe for MiniLM)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def shared_encoder(
    source: str | None = None,
    max_length: int = 256,
    batch_size: int = 32,
    int8: bool = False,
    models_dir: Path | None = None,
    adapter: Path | None = None,
) -> SentenceEncoder:
    """One encoder per process and configuration: the default classifier and the extractive summariser
    read the same MiniLM, so a worker serving both loads it once."""
    # Positional, so that a default passed by name and one left out are the same cache key.
    return _cached_encoder(source, max_length, batch_size, int8, models_dir, adapter)


@functools.cache
def _cached_encoder(
    source: str | None,
    max_length: int,
    batch_size: int,
    int8: bool,
    models_dir: Path | None,
    adapter: Path | None,
) -> SentenceEncoder:
    return SentenceEncoder(
        source, max_length=max_length, batch_size=batch_size, int8=int8, models_dir=models_dir,
        adapter=adapter,
    )  # fmt: skip
