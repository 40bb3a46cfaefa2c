"""The classifier head's on-disk form, and the head applied with numpy: what serving needs, torch-free.

A head is a directory with `head.safetensors` (weights) and `head.json` (labels, shape, how it was
trained, the figures it gave). No pickle: both files are plain data. The torch module that trains it is
chatlens.backends.head_module; serving applies the same weights with numpy, so a worker without torch
(an ONNX encoder) serves the same head.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel
from safetensors.numpy import load_file

from chatlens.backends.encoder_source import Pooling
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


def head_files(directory: Path) -> tuple[Path, Path]:
    weights, card = directory / WEIGHTS, directory / CARD
    if not weights.exists() or not card.exists():
        raise ChatlensError(
            f"no classifier head in {directory} (need {WEIGHTS} and {CARD}); run `chatlens train` "
            "or unset CHATLENS_HEAD_PATH to use the committed one"
        )
    return weights, card


def load_head_config(directory: Path) -> HeadConfig:
    card = head_files(directory)[1]
    return HeadConfig.model_validate(json.loads(card.read_text(encoding="utf-8")))


def head_sha256(directory: Path) -> str:
    digest = hashlib.sha256((directory / WEIGHTS).read_bytes() + (directory / CARD).read_bytes())
    return digest.hexdigest()


def head_version(directory: Path) -> str:
    return head_sha256(directory)[:12]


class NumpyHead:
    """The trained head's inference: standardise, the linear layer(s), the logit adjustment, softmax.
    The same arithmetic as ClassifierHead.adjusted_logits in eval mode (dropout is the identity)."""

    def __init__(self, directory: Path) -> None:
        weights, _ = head_files(directory)
        self.config = load_head_config(directory)
        state = load_file(str(weights))
        self.mean = state["input_mean"]
        self.std = state["input_std"]
        self.adjustment = state["adjustment"]
        # nn.Sequential keys: a linear head is (Dropout, Linear) -> "layers.1.*"; a hidden one is
        # (Linear, GELU, Dropout, Linear) -> "layers.0.*" and "layers.3.*".
        names = ["layers.0", "layers.3"] if self.config.hidden_dim else ["layers.1"]
        self.linear = [(state[f"{n}.weight"].T.copy(), state[f"{n}.bias"]) for n in names]

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        x = (features - self.mean) / self.std
        for i, (weight, bias) in enumerate(self.linear):
            if i:
                x = _gelu(x)
            x = x @ weight + bias
        logits = x + self.adjustment
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float32)


_ERF = np.frompyfunc(math.erf, 1, 1)


def _gelu(x: np.ndarray) -> np.ndarray:
    # torch.nn.GELU's exact form, 0.5 x (1 + erf(x / sqrt 2)); numpy has no erf of its own.
    erf = np.asarray(_ERF(x / math.sqrt(2.0)), dtype=np.float32)
    return np.asarray(0.5 * x * (1.0 + erf), dtype=np.float32)
