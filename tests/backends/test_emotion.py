"""go_emotions -> our 8 labels: the mapping on hand-made scores, and a tiny RoBERTa through the real path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from chatlens.backends.classifier import CLASSIFIERS
from chatlens.backends.classifiers.emotion import EmotionClassifier, map_scores, mapping_matrix
from chatlens.bench.speed import GO_EMOTIONS
from chatlens.core.errors import ChatlensError
from chatlens.core.labels import LABELS
from chatlens.core.settings import Settings
from tests.fixtures.tiny_models import save_tiny_roberta_go_emotions

# A real model, a subprocess or a real redis-server: the full suite only, not `make test-fast`.
pytestmark = pytest.mark.slow

ID2LABEL = dict(enumerate(GO_EMOTIONS))
SEED_MAPPING = Settings().emotion_mapping


def scores_for(**named: float) -> torch.Tensor:
    row = torch.zeros(len(GO_EMOTIONS))
    for name, value in named.items():
        row[GO_EMOTIONS.index(name)] = value
    return row.unsqueeze(0)


def test_unmapped_labels_are_dropped_before_the_argmax() -> None:
    matrix = mapping_matrix(ID2LABEL, SEED_MAPPING, other_label=None)
    # admiration is the top score overall, but it is not one of ours: joy (Happy) wins.
    mapped = map_scores(scores_for(admiration=0.9, joy=0.3, sadness=0.2), matrix)
    assert LABELS[int(mapped.argmax())] == "Happy" and float(mapped.max()) == pytest.approx(0.3)
    assert float(mapped[0, LABELS.index("Sad")]) == pytest.approx(0.2)


def test_other_mass_competes_under_the_chosen_label() -> None:
    matrix = mapping_matrix(ID2LABEL, SEED_MAPPING, other_label="Neutral")
    mapped = map_scores(scores_for(admiration=0.9, joy=0.3, neutral=0.1), matrix)
    assert LABELS[int(mapped.argmax())] == "Neutral" and float(mapped.max()) == pytest.approx(0.9)


def test_a_mapping_that_does_not_fit_the_model_is_refused() -> None:
    with pytest.raises(ChatlensError, match="unknown model labels \\['glee'\\]"):
        mapping_matrix(ID2LABEL, {"glee": "Happy"}, None)
    with pytest.raises(ChatlensError, match="unknown target labels \\['Joyful'\\]"):
        mapping_matrix(ID2LABEL, {"joy": "Joyful"}, None)


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_roberta_go_emotions(tmp_path_factory.mktemp("roberta"))


def test_worker_loads_tiny_roberta_through_the_hub_code_path(tiny_roberta: Path) -> None:
    classifier = CLASSIFIERS.build("emotion", Settings(emotion_model=str(tiny_roberta), device="cpu"))
    assert isinstance(classifier, EmotionClassifier) and classifier.multi_label
    texts = ["hi", "I am furious about the referee!", "what do you think?"]
    outputs = classifier.predict(texts)
    assert all(o.label in LABELS and 0 < o.confidence < 1 for o in outputs)
    # The prediction is the arg-max of the mapped sigmoid scores of a plain forward pass.
    enc = classifier.tokenizer(texts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        sigmoid = torch.sigmoid(classifier.model(**enc).logits)
    expected = map_scores(sigmoid, classifier.matrix).argmax(dim=-1)
    assert [o.label for o in outputs] == [LABELS[i] for i in expected.tolist()]
    # What produced the answers: the weights, the mapping onto our labels, and how the model ran.
    assert classifier.version.startswith(f"{tiny_roberta}+mapping-")
    other_label = Settings(emotion_model=str(tiny_roberta), device="cpu", emotion_other_label="Neutral")
    assert CLASSIFIERS.build("emotion", other_label).version != classifier.version
    half = Settings(emotion_model=str(tiny_roberta), device="cpu", dtype="bfloat16")
    assert CLASSIFIERS.build("emotion", half).version == classifier.version + "+bfloat16"
