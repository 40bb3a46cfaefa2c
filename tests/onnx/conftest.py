"""Tiny encoders, their heads and their ONNX exports, built once per module."""

from __future__ import annotations

import pytest

from tests.fixtures.onnx_default import TinyDefault


@pytest.fixture(scope="module")
def tiny_default(tmp_path_factory: pytest.TempPathFactory) -> TinyDefault:
    return TinyDefault(tmp_path_factory.mktemp("tiny-default"))
