"""The default classifier on the real bundled all-MiniLM-L6-v2 weights and the committed head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from chatlens.backends.classifiers.minilm import MiniLMClassifier
from chatlens.backends.encoder import SentenceEncoder, bundled_encoder_path
from chatlens.core.labels import LABELS

# A real model, a subprocess or a real redis-server: the full suite only, not `make test-fast`.
pytestmark = pytest.mark.slow

TEXTS = [
    "hi",
    "Did you know that octopuses have three hearts? I had no idea until yesterday!",
    "That referee was a disgrace and I am still furious about the match.",
    "ok",
    "I'm so sorry to hear about your grandfather, he sounds like he was a wonderful man.",
]


@pytest.fixture(scope="module")
def classifier() -> MiniLMClassifier:
    torch.set_num_threads(2)
    return MiniLMClassifier(batch_size=2)


def test_embeddings_match_sentence_transformers() -> None:
    from sentence_transformers import SentenceTransformer

    ours = SentenceEncoder(batch_size=2).encode(TEXTS)
    reference = SentenceTransformer(bundled_encoder_path(), device="cpu").encode(TEXTS)
    assert ours.shape == (5, 384)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_length_sorted_batches_give_the_same_answers_as_one_at_a_time(classifier: MiniLMClassifier) -> None:
    batched = classifier.probabilities(TEXTS)
    single = np.concatenate([classifier.probabilities([t]) for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-5, rtol=1e-4)


def test_predictions_are_labels_with_confidence(classifier: MiniLMClassifier) -> None:
    outputs = classifier.predict(TEXTS)
    assert len(outputs) == len(TEXTS)
    assert all(o.label in LABELS and 1 / len(LABELS) <= o.confidence <= 1 for o in outputs)
    assert classifier.version.startswith("sentence-transformers/all-MiniLM-L6-v2+head-")
    assert classifier.version.endswith("+torch")  # the runtime is part of every result's version
    assert classifier.predict([]) == []


def test_long_messages_are_truncated_not_refused(classifier: MiniLMClassifier) -> None:
    (output,) = classifier.predict(["word " * 5000])
    assert output.label in LABELS
