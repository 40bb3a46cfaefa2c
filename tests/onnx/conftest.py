"""Tiny encoders, their heads and their ONNX exports, built once per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatlens.backends.onnx_export import export
from chatlens.backends.runtime import EncoderSpec
from tests.onnx.tiny_encoders import save_tiny_bert, save_tiny_head


class TinyDefault:
    """A tiny BERT as the default classifier's encoder (and the summariser's), with its head and both
    exports, set up through the settings a user sets: CHATLENS_ENCODER_PATH, _HEAD_PATH, _EXPORTS_DIR."""

    def __init__(self, root: Path) -> None:
        self.encoder = save_tiny_bert(root / "tiny-bert")
        self.head = save_tiny_head(root / "head", self.encoder)
        self.exports = root / "exports"
        self.spec = EncoderSpec("default", str(self.encoder))
        self.dirs = {
            int8: export(self.spec, self.exports, int8=int8, head_dir=self.head)[0] for int8 in (False, True)
        }

    def env(self) -> dict[str, str]:
        return {
            "CHATLENS_ENCODER_PATH": str(self.encoder),
            "CHATLENS_HEAD_PATH": str(self.head),
            "CHATLENS_EXPORTS_DIR": str(self.exports),
            # The extractive summariser reads the same tiny encoder, so the same export serves it.
            "CHATLENS_SUMMARY_MODEL": str(self.encoder),
        }


@pytest.fixture(scope="module")
def tiny_default(tmp_path_factory: pytest.TempPathFactory) -> TinyDefault:
    return TinyDefault(tmp_path_factory.mktemp("tiny-default"))
