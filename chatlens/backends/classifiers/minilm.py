"""`MiniLMClassifier`: the offline default, bundled MiniLM encoder plus our trained head."""

from __future__ import annotations

from pathlib import Path

import torch

from chatlens.backends.classifier import Output, top_outputs
from chatlens.backends.encoder import shared_encoder
from chatlens.backends.head import DEFAULT_HEAD_DIR, head_version, load_head
from chatlens.core.settings import Settings


class MiniLMClassifier:
    """The bundled all-MiniLM-L6-v2 encoder, frozen, with our trained head on its pooled hidden states."""

    def __init__(
        self,
        head_dir: Path | None = None,
        encoder: str | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
        int8: bool = False,
        models_dir: Path | None = None,
        adapter: Path | None = None,
    ) -> None:
        head_dir = head_dir or DEFAULT_HEAD_DIR
        self.head = load_head(head_dir)
        self.encoder = shared_encoder(
            encoder,
            # No longer than the head was trained on: a longer input is one the head never saw.
            max_length=min(max_length or self.head.config.max_length, self.head.config.max_length),
            batch_size=batch_size,
            int8=int8,
            models_dir=models_dir,
            adapter=adapter,
        )
        self.labels = self.head.config.labels
        self.version = f"{self.encoder.model_id}+head-{head_version(head_dir)}" + ("+int8" if int8 else "")

    @torch.inference_mode()
    def probabilities(self, texts: list[str]) -> torch.Tensor:
        features = torch.from_numpy(self.encoder.encode(texts, self.head.config.pooling))
        return torch.softmax(self.head.adjusted_logits(features), dim=-1)

    def predict(self, texts: list[str]) -> list[Output]:
        return top_outputs(self.probabilities(texts), self.labels)


def build(settings: Settings) -> MiniLMClassifier:
    return MiniLMClassifier(
        head_dir=settings.head_path,
        encoder=settings.encoder_path,
        batch_size=settings.inference_batch_size,
        max_length=settings.max_length,
        int8=settings.quantize_int8,
        models_dir=settings.models_dir,
    )
