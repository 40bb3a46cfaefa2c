"""`ClassifierHead`: the head as a torch module, for training it and saving it (serving applies the saved
weights with numpy: chatlens.backends.head.NumpyHead)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from chatlens.backends.head import CARD, WEIGHTS, HeadConfig, head_files, head_version, load_head_config


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
    weights, _ = head_files(directory)
    head = ClassifierHead(load_head_config(directory))
    head.load_state_dict(load_file(str(weights)))
    return head.eval()
