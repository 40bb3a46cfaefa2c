"""Which runtime runs an encoder (CHATLENS_RUNTIME), and the one factory every encoder is opened through.

- `onnx-int8`, `onnx`: a verified export (chatlens.backends.onnx_encoder), run by onnxruntime: no torch.
- `torch`, `torch-int8`: the transformers model (chatlens.backends.encoder), int8 by torch's dynamic
  quantisation of the Linear layers.
- `auto` (the default): the shipped ONNX precision where its export exists, else the other one, else
  torch where it is installed. A worker never builds an export: on a host without torch and without the
  export it refuses with the `chatlens models export` command to run on a host with torch.

Serving (the classifiers, the extractive summariser) and training (`chatlens train head`) both open their
encoder here, so a head can be trained on the very features a runtime serves.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Protocol, cast

import numpy as np

from chatlens.backends.encoder_source import (
    Pooling,
    adapter_sha256,
    adapter_version,
    expected_weights_sha256,
    recorded_id,
)
from chatlens.backends.head import head_sha256
from chatlens.backends.onnx_encoder import (
    Expected,
    OnnxEncoder,
    Precision,
    check_export,
    read_manifest,
    rebuild_command,
)
from chatlens.core.errors import ChatlensError

log = logging.getLogger(__name__)


class Runtime(StrEnum):
    AUTO = "auto"
    ONNX_INT8 = "onnx-int8"
    ONNX = "onnx"
    TORCH = "torch"
    TORCH_INT8 = "torch-int8"


# What `auto` serves first where its export exists, unless a model says otherwise: for the MiniLM
# (default, extractive) int8 met the quality rule on test.csv (docs/guide/runtimes.md), so it ships;
# fp32 ONNX is the next choice.
AUTO_ORDER: tuple[Precision, ...] = ("int8", "fp32")
PRECISION: dict[Runtime, Precision] = {Runtime.ONNX: "fp32", Runtime.ONNX_INT8: "int8"}


class Encoder(Protocol):
    model_id: str  # the weights (id and revision, +lora-<hash>)
    runtime: str  # onnx-int8, onnx, torch or torch-int8: part of every result's version
    max_length: int

    def dim(self, pooling: Pooling) -> int: ...

    def encode(self, texts: list[str], pooling: Pooling = Pooling.MEAN) -> np.ndarray: ...

    def token_counts(self, texts: list[str], special_tokens: bool = True) -> list[int]: ...


@dataclass(frozen=True)
class EncoderSpec:
    """An encoder as the settings name it; `name` is its export's name (`chatlens models export NAME`)."""

    name: str
    source: str | None  # None = the bundled MiniLM; a catalog name, HF id or directory
    models_dir: Path | None = None
    adapter: Path | None = None

    @property
    def model_id(self) -> str:
        base = recorded_id(self.source)
        return base + (f"+lora-{adapter_version(self.adapter)}" if self.adapter else "")


def export_dir(exports_dir: Path, spec: EncoderSpec, precision: Precision) -> Path:
    """Where the export of an encoder lives: one directory per encoder (weights + adapter) and precision,
    so the default classifier and the extractive summariser, which read the same MiniLM, share one."""
    slug = re.sub(r"[^A-Za-z0-9._@+-]", "-", spec.model_id.replace("/", "--"))
    return exports_dir / slug / precision


def open_encoder(
    spec: EncoderSpec,
    runtime: Runtime | str,
    exports_dir: Path,
    max_length: int = 256,
    batch_size: int = 32,
    threads: int | None = None,
    head_dir: Path | None = None,
    device: str = "cpu",
    shared: bool = True,
    auto_order: tuple[Precision, ...] = AUTO_ORDER,
) -> Encoder:
    """The encoder `spec` names, run by `runtime`. With `head_dir`, an export must have been checked with
    that head. `shared`: one instance per process and configuration (a worker's classifier and
    summariser read the same MiniLM: one load). `auto_order`: the export precisions `auto` tries."""
    runtime = Runtime(runtime)
    if runtime in (Runtime.TORCH, Runtime.TORCH_INT8):
        return _torch_encoder(spec, max_length, batch_size, runtime is Runtime.TORCH_INT8, device, shared)
    precisions = auto_order if runtime is Runtime.AUTO else (PRECISION[runtime],)
    for precision in precisions:
        directory = export_dir(exports_dir, spec, precision)
        if runtime is Runtime.AUTO and not directory.exists():
            continue
        manifest = read_manifest(directory, spec.name, precision)
        expected = Expected(
            weights_sha256=expected_weights_sha256(spec.source, spec.models_dir),
            adapter_sha256=adapter_sha256(spec.adapter) if spec.adapter else None,
            head_sha256=head_sha256(head_dir) if head_dir else None,
            head_dir=head_dir,
        )
        check_export(directory, manifest, expected)
        if not shared:
            return OnnxEncoder(directory, manifest, max_length, batch_size, threads)
        key = (directory, max_length, batch_size, threads)
        if key not in _SHARED_ONNX:
            _SHARED_ONNX[key] = OnnxEncoder(directory, manifest, max_length, batch_size, threads)
        return _SHARED_ONNX[key]
    if not torch_installed():
        where = export_dir(exports_dir, spec, auto_order[0])
        raise ChatlensError(
            f"{where}: no ONNX export of {spec.name!r} ({spec.model_id}), and torch is not installed to "
            f"run it without one; run `{rebuild_command(spec.name, auto_order[0])}` on a host with "
            "chatlens[worker] and copy CHATLENS_EXPORTS_DIR here"
        )
    log.warning(
        "no ONNX export of %r in %s: serving it with torch; `%s` makes one (faster, less memory)",
        spec.name, exports_dir, rebuild_command(spec.name, auto_order[0]),
    )  # fmt: skip
    return _torch_encoder(spec, max_length, batch_size, False, device, shared)


# One session per export and configuration in a process; checked against the manifest at every open.
_SHARED_ONNX: dict[tuple[Path, int, int, int | None], OnnxEncoder] = {}


def _torch_encoder(
    spec: EncoderSpec, max_length: int, batch_size: int, int8: bool, device: str, shared: bool
) -> Encoder:
    # By name, like the registry's factories: the ONNX serving path never imports torch, and the
    # import-linter contract that holds it so sees no static edge to this module.
    torch_module = importlib.import_module("chatlens.backends.encoder")
    if shared and device == "cpu":
        return cast(
            "Encoder",
            torch_module.shared_encoder(
                spec.source, max_length, batch_size, int8, spec.models_dir, spec.adapter
            ),
        )
    return cast("Encoder", torch_module.SentenceEncoder(
        spec.source, max_length=max_length, batch_size=batch_size, int8=int8, models_dir=spec.models_dir,
        adapter=spec.adapter, device=device,
    ))  # fmt: skip


def torch_installed() -> bool:
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):  # a finder that refuses it, or a half-removed install
        return False
