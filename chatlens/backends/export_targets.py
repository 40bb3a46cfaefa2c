"""What `chatlens models export NAME|DIR` exports: the encoder a model serves with, and the head its
export is checked with, read from the same settings the model's factory reads."""

from __future__ import annotations

from pathlib import Path

from chatlens.backends.classifiers.accurate import ACCURATE_HEAD_DIR, ADAPTER_DIR
from chatlens.backends.head import DEFAULT_HEAD_DIR
from chatlens.backends.runtime import EncoderSpec
from chatlens.backends.summariser import configured_model
from chatlens.core.errors import ChatlensError
from chatlens.core.settings import Settings

NAMES = ("default", "accurate", "extractive")


def export_target(name: str, settings: Settings) -> tuple[EncoderSpec, Path | None]:
    """(the encoder, the head to check it with) for a model name, or an encoder directory (no head)."""
    default_head = settings.head_path or DEFAULT_HEAD_DIR
    default = EncoderSpec("default", settings.encoder_path, settings.models_dir)
    if name == "default":
        return default, default_head
    if name == "accurate":
        head = settings.accurate_head_path or ACCURATE_HEAD_DIR
        adapter = head / ADAPTER_DIR
        spec = EncoderSpec(
            "accurate", settings.accurate_encoder, settings.models_dir, adapter if adapter.is_dir() else None
        )
        return spec, head
    if name == "extractive":
        spec = EncoderSpec("extractive", configured_model(settings, "extractive"), settings.models_dir)
        # The bundled MiniLM serves both: one export, checked with the classifier's head too.
        return spec, default_head if spec.model_id == default.model_id else None
    if Path(name).is_dir():
        return EncoderSpec(name, name), None
    raise ChatlensError(
        f"nothing to export named {name!r}: give {', '.join(NAMES)} or an encoder's model directory"
    )
