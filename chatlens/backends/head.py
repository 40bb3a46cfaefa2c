"""`ClassifierHead`: the small trained layer on top of the frozen encoder, and its on-disk form.

A head is a directory with `head.safetensors` (weights) and `head.json` (labels, shape, how it was
trained, the figures it gave). No pickle: both files are plain data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel
from safetensors.torch import load_file, save_file

from chatlens.backends.encoder import Pooling
from chatlens.core.errors import ChatlensError

DEFAULT_HEAD_DIR = Path(__file__).parent / "default_head"
WEIGHTS = "head.safetensors"
CARD = "head.json"


class HeadConfig(BaseModel):
    labels: list[str]
    input_dim: int
    pooling: Pooling = Pooling.LAYER_MEANS
    hidden_dim: int = 0  # 0 = a linear head
    dropout: float = 0.0
    encoder: str
    max_length: int
    # Added to the logits at inference: -tau * log(class prior), tau chosen on the validation slice.
    logit_adjustment: list[float]
    training: dict[str, Any] = {}


class ClassifierHead(torch.nn.Module):
    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        n = len(config.labels)
        if config.hidden_dim:
            self.layers = torch.nn.Sequential(
                torch.nn.Linear(config.input_dim, config.hidden_dim),
                torch.nn.GELU(),
                torch.nn.Dropout(config.dropout),
                torch.nn.Linear(config.hidden_dim, n),
            )
        else:
            self.layers = torch.nn.Sequential(
                torch.nn.Dropout(config.dropout), torch.nn.Linear(config.input_dim, n)
            )
        # Buffers travel with the state dict; annotated so the type checker knows they are tensors.
        self.adjustment: torch.Tensor
        self.input_mean: torch.Tensor
        self.input_std: torch.Tensor
        self.register_buffer("adjustment", torch.tensor(config.logit_adjustment, dtype=torch.float32))
        # Inputs are standardised with the training part's statistics, kept with the weights.
        self.register_buffer("input_mean", torch.zeros(config.input_dim))
        self.register_buffer("input_std", torch.ones(config.input_dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Raw logits, without the adjustment (training uses these)."""
        return self.layers((features - self.input_mean) / self.input_std)

    def adjusted_logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.forward(features) + self.adjustment


def save_head(head: ClassifierHead, directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in head.state_dict().items()}
    save_file(state, str(directory / WEIGHTS))
    (directory / CARD).write_text(head.config.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return head_version(directory)


def load_head(directory: Path) -> ClassifierHead:
    weights, card = directory / WEIGHTS, directory / CARD
    if not weights.exists() or not card.exists():
        raise ChatlensError(
            f"no classifier head in {directory} (need {WEIGHTS} and {CARD}); run `chatlens train` "
            "or unset CHATLENS_HEAD_PATH to use the committed one"
        )
    config = HeadConfig.model_validate(json.loads(card.read_text(encoding="utf-8")))
    head = ClassifierHead(config)
    head.load_state_dict(load_file(str(weights)))
    return head.eval()


def head_version(directory: Path) -> str:
    digest = hashlib.sha256((directory / WEIGHTS).read_bytes() + (directory / CARD).read_bytes())
    return digest.hexdigest()[:12]
