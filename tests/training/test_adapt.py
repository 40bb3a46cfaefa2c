"""`chatlens train adapt`: a LoRA adapter trained with the head on a tiny random MPNet, then served by
the accurate classifier, which folds the adapter into the encoder at load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from chatlens.backends.classifiers.accurate import AccurateClassifier
from chatlens.backends.encoder import ADAPTER_WEIGHTS, SentenceEncoder
from chatlens.cli.demo import EXAMPLE_FILE
from chatlens.core.errors import ChatlensError
from chatlens.training.adapt import AdaptOptions, adapt
from chatlens.training.data import load_split
from tests.fixtures.tiny_models import save_tiny_mpnet

pytestmark = pytest.mark.slow  # a real (tiny) model trained end to end


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_mpnet(tmp_path_factory.mktemp("tiny-mpnet"))


@pytest.fixture(scope="module")
def adapted(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, np.ndarray]:
    out = tmp_path_factory.mktemp("adapted")
    options = AdaptOptions(
        train_files=(EXAMPLE_FILE,), out_dir=out / "head", encoder=str(tiny), epochs=2, batch_size=8,
        max_length=64, val_frac=0.3, lr=5e-3, device="cpu", predictions=out / "val.npz",
    )  # fmt: skip
    report, val_logits = adapt(options, lambda stage, done, total: None)
    return out, report, val_logits


def test_the_adapter_and_head_are_written_small_with_a_card(adapted: tuple[Path, dict, np.ndarray]) -> None:
    out, report, _ = adapted
    adapter = out / "head" / "adapter"
    assert (adapter / ADAPTER_WEIGHTS).stat().st_size < 100_000
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 8
    card = json.loads((out / "head" / "head.json").read_text())
    assert card["training"]["adapter"]["targets"] == ["q", "k", "v", "o"]
    assert card["training"]["validation_rows"] == report["validation_rows"] > 0
    assert len(report["history"]) == 2
    saved = np.load(out / "val.npz")
    assert saved["logits"].shape == (report["validation_rows"], 8)


def test_serving_reproduces_the_trained_logits(tiny: Path, adapted: tuple[Path, dict, np.ndarray]) -> None:
    """The classifier merges the adapter into the weights: its logits are the trainer's on validation."""
    out, _, val_logits = adapted
    split = load_split([EXAMPLE_FILE], 0.3, 0)
    classifier = AccurateClassifier(encoder=str(tiny), models_dir=out, head_dir=out / "head", max_length=64)
    assert "+lora-" in classifier.version
    texts = [split.data.texts[i] for i in split.val]
    features = classifier.encoder.encode(texts, classifier.head.config.pooling)
    served = classifier.head.probabilities(features)  # the serving head (numpy): probabilities
    trained = torch.softmax(torch.from_numpy(val_logits), dim=-1).numpy()
    np.testing.assert_allclose(served, trained, atol=2e-4)

    # The adapter moved the encoder: the frozen base gives other features for the same texts.
    frozen = SentenceEncoder(str(tiny), max_length=64).encode(texts, classifier.head.config.pooling)
    assert not np.allclose(frozen, features, atol=1e-3)


def test_a_missing_adapter_file_is_one_clear_error(tiny: Path, tmp_path: Path) -> None:
    (tmp_path / "adapter").mkdir()
    with pytest.raises(ChatlensError, match="no LoRA adapter"):
        SentenceEncoder(str(tiny), adapter=tmp_path / "adapter")
