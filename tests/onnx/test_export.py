"""`chatlens models export`: ONNX graphs of the served encoders, checked against torch, and refused in one
line when missing, corrupt or built from other weights, adapter or head."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from chatlens.backends.classifiers.minilm import MiniLMClassifier
from chatlens.backends.encoder import SentenceEncoder
from chatlens.backends.encoder_source import Pooling
from chatlens.backends.onnx_encoder import GRAPH, MANIFEST, read_manifest
from chatlens.backends.onnx_export import export, probe_texts
from chatlens.backends.runtime import EncoderSpec, open_encoder
from chatlens.core.errors import ChatlensError
from tests.fixtures.onnx_default import TinyDefault
from tests.fixtures.tiny_models import save_tiny_bert, save_tiny_head, save_tiny_mpnet
from tests.helpers import run_chatlens, subprocess_env

TEXTS = [*probe_texts()[:24], "", "word " * 300]


@pytest.mark.parametrize("architecture", ["bert", "mpnet"])
@pytest.mark.parametrize("int8", [False, True], ids=["fp32", "int8"])
def test_an_export_gives_torch_features_and_token_counts(
    tmp_path: Path, architecture: str, int8: bool
) -> None:
    save = save_tiny_bert if architecture == "bert" else save_tiny_mpnet
    source = save(tmp_path / architecture)
    spec = EncoderSpec(str(source), str(source))
    directory, _manifest = export(spec, tmp_path / "exports", int8=int8)
    assert directory.name == ("int8" if int8 else "fp32") and (directory / MANIFEST).is_file()
    torch_encoder = SentenceEncoder(str(source), max_length=64)
    onnx_encoder = open_encoder(spec, "onnx-int8" if int8 else "onnx", tmp_path / "exports", 64, shared=False)
    assert onnx_encoder.runtime == ("onnx-int8" if int8 else "onnx") and onnx_encoder.model_id == str(source)
    for pooling in Pooling:
        want, got = torch_encoder.encode(TEXTS, pooling), onnx_encoder.encode(TEXTS, pooling)
        assert got.shape == want.shape == (len(TEXTS), torch_encoder.dim(pooling))
        if int8:
            cosine = (want * got).sum(1) / (np.linalg.norm(want, axis=1) * np.linalg.norm(got, axis=1))
            assert cosine.min() > 0.95
        else:
            np.testing.assert_allclose(got, want, atol=1e-4)
    for special in (True, False):
        assert onnx_encoder.token_counts(TEXTS, special) == torch_encoder.token_counts(TEXTS, special)
    recorded = json.loads((directory / MANIFEST).read_text())
    assert recorded["probe"]["messages"] == len(probe_texts()) and recorded["head_sha256"] is None


def test_the_classifier_serves_the_export_with_its_runtime_in_the_version(tiny_default: TinyDefault) -> None:
    texts = probe_texts()
    kwargs = {"head_dir": tiny_default.head, "encoder": str(tiny_default.encoder)}
    torch_run = MiniLMClassifier(**kwargs, runtime="torch")  # type: ignore[arg-type]
    onnx_run = MiniLMClassifier(**kwargs, runtime="onnx", exports_dir=tiny_default.exports)  # type: ignore[arg-type]
    auto_run = MiniLMClassifier(**kwargs, runtime="auto", exports_dir=tiny_default.exports)  # type: ignore[arg-type]
    assert torch_run.version.endswith("+torch") and onnx_run.version.endswith("+onnx")
    assert auto_run.version.endswith("+onnx-int8")  # auto: the int8 export first
    assert [o.label for o in onnx_run.predict(texts)] == [o.label for o in torch_run.predict(texts)]
    manifest = read_manifest(tiny_default.dirs[False], "default", "fp32")
    assert manifest.probe.label_agreement == 1.0 and manifest.head_sha256 is not None


def refusal(tiny: TinyDefault, redis_url: str, **extra: str) -> str:
    """A worker asked to serve the tiny default from its fp32 export: its one-line refusal."""
    env = subprocess_env(CHATLENS_REDIS_URL=redis_url, CHATLENS_RUNTIME="onnx", **{**tiny.env(), **extra})
    done = run_chatlens("worker", "--burst", "--queue", "classify-default", env=env, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_a_missing_corrupt_or_mismatched_export_is_refused_in_one_line(
    tiny_default: TinyDefault, redis_url: str, tmp_path: Path
) -> None:
    exports = tmp_path / "exports"
    shutil.copytree(tiny_default.exports, exports)
    (fp32,) = [d for d in exports.glob("*/fp32")]
    command = "chatlens models export default"

    # Another head than the one the export was checked with.
    other_head = save_tiny_head(tmp_path / "other-head", tiny_default.encoder)
    other = json.loads((other_head / "head.json").read_text())
    other["logit_adjustment"] = [0.5] + [0.0] * (len(other["logit_adjustment"]) - 1)
    (other_head / "head.json").write_text(json.dumps(other))
    line = refusal(tiny_default, str(redis_url), CHATLENS_EXPORTS_DIR=str(exports),
                   CHATLENS_HEAD_PATH=str(other_head))  # fmt: skip
    assert str(fp32 / MANIFEST) in line and "head" in line and command in line

    # A graph changed after its export.
    with (fp32 / GRAPH).open("ab") as graph:
        graph.write(b"\0")
    line = refusal(tiny_default, str(redis_url), CHATLENS_EXPORTS_DIR=str(exports))
    assert str(fp32 / GRAPH) in line and "SHA-256" in line and command in line

    # A manifest that is not one.
    (fp32 / MANIFEST).write_text("{not json")
    line = refusal(tiny_default, str(redis_url), CHATLENS_EXPORTS_DIR=str(exports))
    assert str(fp32 / MANIFEST) in line and "not a readable export manifest" in line and command in line

    # None at all.
    shutil.rmtree(fp32)
    line = refusal(tiny_default, str(redis_url), CHATLENS_EXPORTS_DIR=str(exports))
    assert str(fp32 / MANIFEST) in line and command in line


def test_an_export_of_other_weights_is_refused(tiny_default: TinyDefault, tmp_path: Path) -> None:
    retrained = tmp_path / "tiny-bert"
    shutil.copytree(tiny_default.encoder, retrained)
    weights = retrained / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    exports = tmp_path / "exports"
    shutil.copytree(tiny_default.exports, exports)
    # The export directory is named by the encoder's id: the same path names the retrained weights.
    shutil.copytree(exports / tiny_dir_name(tiny_default), exports / tiny_dir_name_for(retrained))
    spec = EncoderSpec("default", str(retrained))
    with pytest.raises(ChatlensError, match="exported from other weights"):
        open_encoder(spec, "onnx", exports, shared=False)


def tiny_dir_name(tiny: TinyDefault) -> str:
    return tiny.dirs[False].parent.name


def tiny_dir_name_for(source: Path) -> str:
    from chatlens.backends.runtime import export_dir

    return export_dir(Path("x"), EncoderSpec("default", str(source)), "fp32").parent.name


def test_the_real_minilm_exports_with_the_default_head_and_serves_the_same_labels(tmp_path: Path) -> None:
    spec = EncoderSpec("default", None)
    from chatlens.backends.head import DEFAULT_HEAD_DIR

    _directory, manifest = export(spec, tmp_path, head_dir=DEFAULT_HEAD_DIR)
    assert manifest.probe.label_agreement == 1.0 and manifest.probe.max_feature_diff < 1e-4
    assert (
        manifest.weights_sha256 is not None and manifest.encoder == "sentence-transformers/all-MiniLM-L6-v2"
    )
    onnx_run = MiniLMClassifier(runtime="onnx", exports_dir=tmp_path)
    torch_run = MiniLMClassifier(runtime="torch")
    texts = probe_texts()
    assert [o.label for o in onnx_run.predict(texts)] == [o.label for o in torch_run.predict(texts)]
    assert onnx_run.version == torch_run.version.removesuffix("+torch") + "+onnx"
