"""`chatlens train head` on a runtime's own features: the head is fitted on what the int8 export serves,
and served through that export it labels the held-out rows as training scored them."""

from __future__ import annotations

import json
from pathlib import Path

from chatlens.backends.classifiers.minilm import MiniLMClassifier
from chatlens.backends.runtime import Runtime
from chatlens.cli.demo import EXAMPLE_FILE
from chatlens.core.labels import LABELS
from chatlens.training.data import load_split
from chatlens.training.head import TrainOptions, train_head
from eval.metrics import score
from tests.fixtures.onnx_default import TinyDefault


def test_a_head_trained_on_the_int8_features_serves_them(tiny_default: TinyDefault, tmp_path: Path) -> None:
    out = tmp_path / "head"
    cache = tmp_path / "features"
    options = TrainOptions(
        train_files=(EXAMPLE_FILE,), out_dir=out, epochs=3, val_frac=0.2, encoder=str(tiny_default.encoder),
        max_length=64, runtime=Runtime.ONNX_INT8, exports_dir=tiny_default.exports, cache_dir=cache,
    )  # fmt: skip
    report = train_head(options, lambda stage, done, total: None)
    assert report["runtime"] == "onnx-int8"
    card = json.loads((out / "head.json").read_text())
    assert card["input_dim"] == 3 * 32 and card["encoder"] == str(tiny_default.encoder)
    # The features cache is keyed by the runtime: fp32 features would be another file.
    (cached,) = cache.glob("*.npy")
    torch_options = TrainOptions(**{**options.__dict__, "runtime": Runtime.TORCH, "out_dir": tmp_path / "t"})
    train_head(torch_options, lambda stage, done, total: None)
    assert len(list(cache.glob("*.npy"))) == 2 and cached.exists()

    # Served from the int8 export (its manifest names another head, so the export is checked with this
    # one first), the held-out rows get the labels training scored.
    from chatlens.backends.onnx_export import export
    from chatlens.backends.runtime import EncoderSpec

    exports = tmp_path / "exports"
    export(EncoderSpec("default", str(tiny_default.encoder)), exports, int8=True, head_dir=out)
    classifier = MiniLMClassifier(
        head_dir=out, encoder=str(tiny_default.encoder), runtime="onnx-int8", exports_dir=exports
    )
    split = load_split([EXAMPLE_FILE], 0.2, 0)
    served = classifier.predict([split.data.texts[i] for i in split.val])
    truth = [LABELS[i] for i in split.data.y[split.val]]
    metrics = score("default", truth, [o.label for o in served], len(served), len(served))
    assert {"accuracy": metrics.accuracy, "macro_f1": metrics.macro_f1} == card["training"]["validation"]
