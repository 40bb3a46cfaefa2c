"""Zero-shot NLI: scoring on hand-made logits, and the real loading path on tiny BART-MNLI models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from chatlens.backends.classifier import CLASSIFIERS
from chatlens.backends.classifiers.zeroshot import ZeroShotClassifier, entailment_index, label_probabilities
from chatlens.core.errors import ChatlensError
from chatlens.core.labels import LABELS
from chatlens.core.settings import Settings
from tests.backends.tiny_models import save_tiny_bart_mnli

# A real model, a subprocess or a real redis-server: the full suite only, not `make test-fast`.
pytestmark = pytest.mark.slow

TEXTS = ["hi", "Did you know octopuses have three hearts?", "That referee was a disgrace.", "ok then"]


def test_entailment_index_is_read_from_the_config() -> None:
    assert entailment_index({"contradiction": 0, "neutral": 1, "entailment": 2}, "m") == 2
    assert entailment_index({"ENTAILMENT": 0, "NEUTRAL": 1, "CONTRADICTION": 2}, "m") == 0
    with pytest.raises(ChatlensError, match="no 'entailment' label"):
        entailment_index({"LABEL_0": 0, "LABEL_1": 1}, "m")


def test_label_probabilities_known_answer() -> None:
    # Two messages, three labels, message-major: softmax over each message's entailment logits.
    logits = torch.tensor([0.0, 0.0, 0.0, 2.0, 0.0, 0.0])
    probs = label_probabilities(logits, 3)
    torch.testing.assert_close(probs[0], torch.full((3,), 1 / 3))
    e2 = torch.exp(torch.tensor(2.0))
    torch.testing.assert_close(probs[1], torch.tensor([e2, 1, 1]) / (e2 + 2))


@pytest.fixture(scope="module", params=[1, 2], ids=["entailment-at-1", "entailment-at-2"])
def tiny_bart(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    at = request.param
    names = ["contradiction", "neutral"]
    names.insert(at, "entailment")
    return save_tiny_bart_mnli(tmp_path_factory.mktemp("bart"), dict(enumerate(names))), at


def test_worker_loads_tiny_bart_through_the_hub_code_path(tiny_bart: tuple[Path, int]) -> None:
    path, at = tiny_bart
    classifier = CLASSIFIERS.build("zeroshot", Settings(zeroshot_model=str(path), device="cpu"))
    assert isinstance(classifier, ZeroShotClassifier)
    assert classifier.entailment == at
    assert classifier.model.config._attn_implementation == "sdpa"
    # The weights (a local path: no hub commit), then a hash of the hypotheses they are asked about.
    assert classifier.version.startswith(f"{path}+hypotheses-") and classifier.version.count("+") == 1
    reworded = Settings(zeroshot_model=str(path), device="cpu", zeroshot_template="This message is {}.")
    other = CLASSIFIERS.build("zeroshot", reworded)
    assert other.version != classifier.version and other.version.startswith(f"{path}+hypotheses-")
    outputs = classifier.predict(TEXTS)
    assert [o.label in LABELS for o in outputs] == [True] * 4
    assert all(0 < o.confidence <= 1 for o in outputs)


def test_batched_pairs_equal_one_message_at_a_time(tiny_bart: tuple[Path, int]) -> None:
    path, _ = tiny_bart
    settings = Settings(zeroshot_model=str(path), device="cpu", zeroshot_batch_size=5)
    classifier = CLASSIFIERS.build("zeroshot", settings)
    batched = classifier.probabilities(TEXTS)
    single = torch.cat([classifier.probabilities([t]) for t in TEXTS])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)
    # And the scores are the entailment column of a plain forward pass on each pair.
    tokenizer, model = classifier.tokenizer, classifier.model
    pairs = tokenizer([TEXTS[1]] * 8, classifier.hypotheses, return_tensors="pt", padding=True)
    with torch.inference_mode():
        direct = torch.softmax(model(**pairs).logits[:, classifier.entailment], dim=0)
    torch.testing.assert_close(batched[1], direct, atol=1e-5, rtol=1e-4)


def test_int8_quantisation_runs_on_cpu(tiny_bart: tuple[Path, int]) -> None:
    path, _ = tiny_bart
    classifier = CLASSIFIERS.build(
        "zeroshot", Settings(zeroshot_model=str(path), device="cpu", runtime="torch-int8")
    )
    assert "DynamicQuantizedLinear" in repr(classifier.model)
    assert classifier.version.endswith("+int8")
    assert len(classifier.predict(TEXTS)) == 4


def test_a_template_without_a_slot_is_refused(tiny_bart: tuple[Path, int]) -> None:
    with pytest.raises(ChatlensError, match="template with"):
        CLASSIFIERS.build("zeroshot", Settings(zeroshot_model=str(tiny_bart[0]), zeroshot_template="no slot"))
