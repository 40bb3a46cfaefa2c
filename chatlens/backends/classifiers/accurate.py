"""`AccurateClassifier`: all-mpnet-base-v2 with the committed head in `accurate_head/`, and the LoRA
adapter in `accurate_head/adapter/` when the head was trained with one (`chatlens train --adapt lora`).

The base model is not in the repository: `chatlens models fetch all-mpnet-base-v2` assembles and verifies
it once (see chatlens.backends.catalog); the head on top is small and committed, so a fresh clone
serves this classifier with no training. A host without the base model refuses the queue in one line.
"""

from __future__ import annotations

from pathlib import Path

from chatlens.backends.classifiers.minilm import MiniLMClassifier
from chatlens.backends.onnx_encoder import Precision
from chatlens.backends.runtime import Runtime
from chatlens.core.errors import ChatlensError
from chatlens.core.settings import Settings

ACCURATE_HEAD_DIR = Path(__file__).resolve().parent.parent / "accurate_head"
ADAPTER_DIR = "adapter"  # beside head.json: a head trained together with a LoRA adapter of its encoder


class AccurateClassifier(MiniLMClassifier):
    """The same encoder + head design as the default, on a 12-layer 768-dim encoder."""

    export_name = "accurate"
    # CHATLENS_RUNTIME=auto: fp32 first. int8 (MatMul weights per channel) gave torch's label on only 83 %
    # of messages and lost more than 0.005 accuracy (runtimes.md); it is served only when asked for by
    # CHATLENS_RUNTIME=onnx-int8, or when it is the only export.
    auto_order: tuple[Precision, ...] = ("fp32", "int8")

    def __init__(
        self,
        encoder: str,
        models_dir: Path,
        head_dir: Path | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
        runtime: Runtime | str = Runtime.TORCH,
        exports_dir: Path | None = None,
        threads: int | None = None,
    ) -> None:
        head_dir = head_dir or ACCURATE_HEAD_DIR
        adapter = head_dir / ADAPTER_DIR
        super().__init__(
            head_dir=head_dir,
            encoder=encoder,
            batch_size=batch_size,
            max_length=max_length,
            runtime=runtime,
            models_dir=models_dir,
            adapter=adapter if adapter.is_dir() else None,
            exports_dir=exports_dir,
            threads=threads,
        )
        expected = self.encoder.dim(self.head.config.pooling)
        if self.head.config.input_dim != expected:
            raise ChatlensError(
                f"the accurate head in {head_dir} was trained on {self.head.config.encoder} "
                f"({self.head.config.input_dim} features), not on {encoder!r} ({expected}); "
                "fix CHATLENS_ACCURATE_ENCODER or CHATLENS_ACCURATE_HEAD_PATH"
            )


def build(settings: Settings) -> AccurateClassifier:
    return AccurateClassifier(
        encoder=settings.accurate_encoder,
        models_dir=settings.models_dir,
        head_dir=settings.accurate_head_path,
        batch_size=settings.inference_batch_size,
        max_length=settings.max_length,  # at most: the head's own length when it is shorter
        runtime=settings.runtime,
        exports_dir=settings.exports_path,
        threads=settings.threads,
    )
