"""`MiniLMClassifier`: the offline default, bundled MiniLM encoder plus our trained head.

Torch-free on the ONNX runtimes: the encoder comes from chatlens.backends.runtime (which imports torch
only for CHATLENS_RUNTIME=torch|torch-int8) and the head is applied with numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from chatlens.backends.classifier import Output, top_outputs
from chatlens.backends.head import DEFAULT_HEAD_DIR, NumpyHead, head_version
from chatlens.backends.onnx_encoder import Precision
from chatlens.backends.runtime import EncoderSpec, Runtime, open_encoder
from chatlens.core.settings import Settings, default_models_dir


class MiniLMClassifier:
    """The bundled all-MiniLM-L6-v2 encoder, frozen, with our trained head on its pooled hidden states."""

    export_name = "default"  # `chatlens models export default`
    # CHATLENS_RUNTIME=auto: int8 first; on all of test.csv it is within 0.005 of fp32 (runtimes.md).
    auto_order: tuple[Precision, ...] = ("int8", "fp32")

    def __init__(
        self,
        head_dir: Path | None = None,
        encoder: str | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
        runtime: Runtime | str = Runtime.TORCH,
        models_dir: Path | None = None,
        adapter: Path | None = None,
        exports_dir: Path | None = None,
        threads: int | None = None,
    ) -> None:
        head_dir = head_dir or DEFAULT_HEAD_DIR
        self.head_dir = head_dir
        self.head = NumpyHead(head_dir)
        spec = EncoderSpec(self.export_name, encoder, models_dir, adapter)
        self.encoder = open_encoder(
            spec,
            runtime,
            exports_dir or default_models_dir() / "onnx",
            # No longer than the head was trained on: a longer input is one the head never saw.
            max_length=min(max_length or self.head.config.max_length, self.head.config.max_length),
            batch_size=batch_size,
            threads=threads,
            head_dir=head_dir,
            auto_order=self.auto_order,
        )
        self.labels = self.head.config.labels
        self.version = f"{self.encoder.model_id}+head-{head_version(head_dir)}+{self.encoder.runtime}"

    def probabilities(self, texts: list[str]) -> np.ndarray:
        return self.head.probabilities(self.encoder.encode(texts, self.head.config.pooling))

    def predict(self, texts: list[str]) -> list[Output]:
        return top_outputs(self.probabilities(texts), self.labels)


def build(settings: Settings) -> MiniLMClassifier:
    return MiniLMClassifier(
        head_dir=settings.head_path,
        encoder=settings.encoder_path,
        batch_size=settings.inference_batch_size,
        max_length=settings.max_length,
        runtime=settings.runtime,
        models_dir=settings.models_dir,
        exports_dir=settings.exports_path,
        threads=settings.threads,
    )
