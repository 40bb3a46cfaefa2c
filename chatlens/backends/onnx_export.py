"""`export`: an encoder (any LoRA adapter merged) to an ONNX graph with its pooling, checked against torch.

The graph takes `input_ids` and `attention_mask` and returns every hidden state's masked mean, each
L2-normalised, concatenated: the layer-means features a head reads, whose last block is the sentence
embedding the extractive summariser reads. It is exported by the TorchScript exporter (`dynamo=False`,
opset 17); `--int8` then quantises the weights of its MatMul nodes per output channel (dynamic
quantisation: activations are quantised on the fly), leaving the embeddings' Gather in fp32.

Before an export is accepted it runs on the fixed probe set (the bundled example messages) beside torch
fp32: the largest feature difference, the least cosine similarity and, with a head, the share of labels
that agree go into the manifest, and an export outside `TOLERANCE` is refused with nothing written.
This module needs torch (the [worker] extra); serving an export does not (chatlens.backends.onnx_encoder).
"""

from __future__ import annotations

import csv
import shutil
import tempfile
import warnings
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch

from chatlens.backends.encoder import SentenceEncoder, pooled_states
from chatlens.backends.encoder_source import Pooling, adapter_sha256, resolve_encoder, weights_sha256
from chatlens.backends.head import NumpyHead, head_sha256
from chatlens.backends.onnx_encoder import (
    FORMAT,
    GRAPH,
    MANIFEST,
    TOKENIZER,
    Manifest,
    OnnxEncoder,
    Precision,
    ProbeCheck,
    Tolerance,
    rebuild_command,
)
from chatlens.backends.runtime import EncoderSpec, export_dir
from chatlens.core.errors import ChatlensError

PROBE_FILE = Path(__file__).resolve().parent.parent / "data" / "messages.csv"
TOLERANCE: dict[Precision, Tolerance] = {
    # fp32: the same arithmetic in another order; any real difference is an export bug.
    "fp32": Tolerance(max_feature_diff=1e-3, min_cosine=0.9999, min_label_agreement=0.99),
    # int8 moves every feature a little and flips labels near a boundary; the quality rule that decides
    # whether int8 ships is measured on all of test.csv (docs/guide/runtimes.md), this only catches a
    # broken graph.
    "int8": Tolerance(max_feature_diff=None, min_cosine=0.90, min_label_agreement=0.85),
}
QUANTIZATION = "dynamic int8, per-channel weights, MatMul nodes only (embeddings fp32)"


def probe_texts() -> list[str]:
    with PROBE_FILE.open(encoding="utf-8", newline="") as f:
        return [row["message"] for row in csv.DictReader(f)]


class _Pooled(torch.nn.Module):
    """The encoder and its layer-means pooling as one module, the graph's whole computation."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        batch = {"input_ids": input_ids, "attention_mask": attention_mask}
        return pooled_states(self.model, batch, Pooling.LAYER_MEANS)


def export(
    spec: EncoderSpec,
    exports_dir: Path,
    int8: bool = False,
    head_dir: Path | None = None,
    progress: object = None,
) -> tuple[Path, Manifest]:
    """Export, quantise (int8), check against torch, and move into place: the export's directory and its
    manifest. An export outside the tolerance is refused (ChatlensError) and leaves nothing behind."""
    precision: Precision = "int8" if int8 else "fp32"
    path, _ = resolve_encoder(spec.source, spec.models_dir)
    torch_encoder = SentenceEncoder(spec.source, models_dir=spec.models_dir, adapter=spec.adapter)
    target = export_dir(exports_dir, spec, precision)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{precision}-") as tmp:
        work = Path(tmp)
        fp32_graph = work / ("fp32.onnx" if int8 else GRAPH)
        _export_graph(torch_encoder, fp32_graph)
        if int8:
            _quantise(fp32_graph, work / GRAPH)
            fp32_graph.unlink()
        torch_encoder.tokenizer.backend_tokenizer.save(str(work / TOKENIZER))
        pad = torch_encoder.tokenizer.pad_token_id
        manifest = Manifest(
            format=FORMAT,
            name=spec.name,
            encoder=torch_encoder.model_id,
            precision=precision,
            quantization=QUANTIZATION if int8 else "none",
            weights_sha256=weights_sha256(Path(path)),
            adapter_sha256=adapter_sha256(spec.adapter) if spec.adapter else None,
            head_sha256=head_sha256(head_dir) if head_dir else None,
            graph_sha256=_sha256(work / GRAPH),
            tokenizer_sha256=_sha256(work / TOKENIZER),
            hidden_size=torch_encoder.hidden_size,
            layers=torch_encoder.layers,
            model_max_length=torch_encoder.max_length,
            pad_token_id=int(pad if pad is not None else 0),
            probe=ProbeCheck(messages=0, max_feature_diff=0.0, min_cosine=1.0, label_agreement=None),
            tolerance=TOLERANCE[precision],
            built_with={p: version(p) for p in ("torch", "transformers", "onnx", "onnxruntime")},
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        manifest.probe = compare(torch_encoder, OnnxEncoder(work, manifest), head_dir)
        refusal = outside_tolerance(manifest.probe, manifest.tolerance)
        if refusal:
            raise ChatlensError(
                f"the {precision} export of {spec.name!r} ({manifest.encoder}) was refused: {refusal} on "
                f"the {manifest.probe.messages} probe messages of {PROBE_FILE}; nothing was written"
            )
        (work / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        work.chmod(0o755)  # a temporary directory is private; an export is read by other users' workers
        work.rename(target)
        work.mkdir()  # TemporaryDirectory removes what is there on exit
    return target, manifest


def _export_graph(encoder: SentenceEncoder, graph: Path) -> None:
    module = _Pooled(encoder.model).eval()
    sample = encoder.tokenizer(["a probe", "a longer probe message"], padding=True, return_tensors="pt")
    axes = {0: "messages", 1: "tokens"}
    # The tracer warns of Python branches on shapes (the attention's is_causal); with an attention mask
    # given they take one fixed way, which the probe comparison then checks.
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (sample["input_ids"], sample["attention_mask"]),
            str(graph),
            input_names=["input_ids", "attention_mask"],
            output_names=["features"],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, "features": {0: "messages"}},
            opset_version=17,
            dynamo=False,
        )


def _quantise(source: Path, target: Path) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    # It logs a suggestion to pre-process the graph on the root logger; the probe check is our guard.
    logging.getLogger().setLevel(logging.ERROR)
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        # Gather (the embedding tables) quantised costs accuracy and saves no time.
        op_types_to_quantize=["MatMul"],
    )


def compare(reference: SentenceEncoder, exported: OnnxEncoder, head_dir: Path | None) -> ProbeCheck:
    texts = probe_texts()
    want = reference.encode(texts, Pooling.LAYER_MEANS)
    got = exported.encode(texts, Pooling.LAYER_MEANS)
    cosine = (want * got).sum(1) / (np.linalg.norm(want, axis=1) * np.linalg.norm(got, axis=1))
    agreement = None
    if head_dir is not None:
        head = NumpyHead(head_dir)
        agreement = float((head.probabilities(want).argmax(1) == head.probabilities(got).argmax(1)).mean())
    return ProbeCheck(
        messages=len(texts),
        max_feature_diff=float(np.abs(want - got).max()),
        min_cosine=float(cosine.min()),
        label_agreement=agreement,
    )


def outside_tolerance(probe: ProbeCheck, tolerance: Tolerance) -> str | None:
    if tolerance.max_feature_diff is not None and probe.max_feature_diff > tolerance.max_feature_diff:
        return f"max feature difference {probe.max_feature_diff:.2e} > {tolerance.max_feature_diff:.0e}"
    if probe.min_cosine < tolerance.min_cosine:
        return f"least cosine similarity {probe.min_cosine:.4f} < {tolerance.min_cosine}"
    if probe.label_agreement is not None and probe.label_agreement < tolerance.min_label_agreement:
        return f"label agreement {probe.label_agreement:.3f} < {tolerance.min_label_agreement}"
    return None


def _sha256(path: Path) -> str:
    from chatlens.backends.catalog import sha256_file

    return sha256_file(path)


__all__ = ["TOLERANCE", "compare", "export", "outside_tolerance", "probe_texts", "rebuild_command"]
