"""The head as served (numpy) gives the probabilities of the head as trained (torch), linear or not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from chatlens.backends.head import HeadConfig, NumpyHead
from chatlens.backends.head_module import ClassifierHead, save_head
from chatlens.core.labels import LABELS


@pytest.mark.parametrize("hidden_dim", [0, 16])
def test_numpy_and_torch_heads_agree(tmp_path: Path, hidden_dim: int) -> None:
    torch.manual_seed(0)
    config = HeadConfig(
        labels=list(LABELS), input_dim=24, hidden_dim=hidden_dim, dropout=0.3, encoder="x", max_length=8,
        logit_adjustment=np.linspace(-1, 0.5, len(LABELS)).tolist(),
    )  # fmt: skip
    head = ClassifierHead(config).eval()
    head.input_mean.normal_()
    head.input_std.uniform_(0.5, 2.0)
    save_head(head, tmp_path)
    features = torch.randn(10, 24)
    with torch.inference_mode():
        want = torch.softmax(head.adjusted_logits(features), dim=-1).numpy()
    got = NumpyHead(tmp_path).probabilities(features.numpy())
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert got.dtype == np.float32
