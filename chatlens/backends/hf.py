"""Loading a transformers sequence classifier the way a production worker should: one device, one
dtype, sdpa attention where the architecture has it, optional dynamic int8 on CPU."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from chatlens.backends.encoder import load_pretrained, quantize_int8
from chatlens.core.errors import ChatlensError
from chatlens.core.settings import Settings

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(device: str) -> torch.device:
    if device != "auto":
        try:
            return torch.device(device)
        except RuntimeError as exc:
            raise ChatlensError(
                f"CHATLENS_DEVICE={device!r} is not a device; use auto, cpu, cuda, cuda:N or mps"
            ) from exc
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """float32 on CPU (its half-precision kernels are slower there); bfloat16 on a GPU that has it."""
    if dtype != "auto":
        if dtype not in DTYPES:
            raise ChatlensError(f"CHATLENS_DTYPE={dtype!r} is not one of auto, {', '.join(DTYPES)}")
        return DTYPES[dtype]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def hf_options(settings: Settings) -> dict[str, Any]:
    """Where and how a Hugging Face classifier runs: the settings every such backend shares."""
    device = resolve_device(settings.device)
    return {
        "device": device,
        "dtype": resolve_dtype(settings.dtype, device),
        "max_length": settings.max_length,
        "sdpa": settings.sdpa,
        # CHATLENS_RUNTIME=torch-int8: the HF classifiers have no ONNX export; other runtimes run fp32.
        "int8": settings.runtime == "torch-int8",
    }


def load_classifier_model(
    source: str, device: torch.device, dtype: torch.dtype, sdpa: bool = True, int8: bool = False
) -> tuple[object, PreTrainedModel]:
    """Tokenizer and model in eval mode on `device`; the same call for a hub id, a cache hit or a path."""
    tokenizer = load_pretrained(source, AutoTokenizer)
    attention = "sdpa" if sdpa else "eager"
    try:
        model = load_pretrained(
            source, AutoModelForSequenceClassification, attn_implementation=attention, dtype=dtype
        )
    except ValueError:
        # An architecture without an sdpa kernel: fall back rather than refuse.
        model = load_pretrained(
            source, AutoModelForSequenceClassification, attn_implementation="eager", dtype=dtype
        )
    model = model.to(device).eval()
    if int8:
        if device.type != "cpu":
            raise ChatlensError(
                "CHATLENS_RUNTIME=torch-int8 is for CPU workers; on a GPU use CHATLENS_DTYPE=bfloat16"
            )
        model = quantize_int8(model)
    return tokenizer, model


def model_version(source: str, model: PreTrainedModel) -> str:
    """The id or path, and the hub commit when the weights came from the HF cache."""
    commit = getattr(model.config, "_commit_hash", None)
    return f"{source}@{commit[:12]}" if commit else source


def classifier_version(
    source: str, model: PreTrainedModel, dtype: torch.dtype, int8: bool, **answers: object
) -> str:
    """`model_version`, then what else changes the answers: the settings in `answers` (a short hash, as
    `+name-1a2b3c4d`), and how the model runs where it is not float32 (`+bfloat16`, `+int8`)."""
    version = model_version(source, model)
    for name, value in answers.items():
        digest = hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:8]
        version += f"+{name}-{digest}"
    if dtype != torch.float32:
        version += f"+{str(dtype).removeprefix('torch.')}"
    return version + ("+int8" if int8 else "")


def pad_batch(ids: list[list[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-padded input_ids and attention_mask, built in one numpy pass (tokenizer.pad is per row)."""
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    mask = np.arange(lengths.max()) < lengths[:, None]
    input_ids = np.full(mask.shape, pad_id, dtype=np.int64)
    input_ids[mask] = np.concatenate(ids)
    return {
        "input_ids": torch.from_numpy(input_ids).to(device),
        "attention_mask": torch.from_numpy(mask.astype(np.int64)).to(device),
    }


def length_sorted_batches(
    ids: list[list[int]], size: int, rng: np.random.Generator | None
) -> list[np.ndarray]:
    """Batches (row indices) of similar length, so they pad little; in random order when training."""
    order = np.argsort([len(x) for x in ids], kind="stable")
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


@torch.inference_mode()
def batched_logits(
    model: torch.nn.Module,
    ids: list[list[int]],
    pad_id: int,
    device: torch.device,
    batch_size: int,
    sort_by_length: bool = True,
) -> torch.Tensor:
    """Float logits in input order; rows run in batches of similar length, so they pad little."""
    order = np.argsort([len(x) for x in ids], kind="stable") if sort_by_length else np.arange(len(ids))
    out: torch.Tensor | None = None
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        result = model(**pad_batch([ids[i] for i in chunk], pad_id, device))
        logits = getattr(result, "logits", result).float().cpu()
        if out is None:
            out = torch.empty((len(ids), logits.shape[1]))
        out[torch.from_numpy(chunk)] = logits
    assert out is not None
    return out
