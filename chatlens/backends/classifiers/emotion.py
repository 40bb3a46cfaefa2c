"""`EmotionClassifier`: a go_emotions model (28 labels) mapped onto our 8.

As the seed did, only the mapped labels compete for the arg-max; optionally the best of the other 20
competes too, under `other_label` (e.g. Neutral), instead of being dropped.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from chatlens.backends.classifier import Output, top_outputs
from chatlens.backends.hf import batched_logits, classifier_version, hf_options, load_classifier_model
from chatlens.core.errors import ChatlensError
from chatlens.core.labels import LABELS
from chatlens.core.settings import Settings


def mapping_matrix(
    id2label: Mapping[int, str], mapping: Mapping[str, str], other_label: str | None
) -> np.ndarray:
    """(model labels, our labels) 0/1 matrix: which model label feeds which of ours."""
    names = {str(name).lower(): int(i) for i, name in id2label.items()}
    unknown = [k for k in mapping if k.lower() not in names]
    bad = [v for v in [*mapping.values(), *([other_label] if other_label else [])] if v not in LABELS]
    if unknown or bad:
        raise ChatlensError(
            f"emotion mapping does not fit the model: unknown model labels {unknown or 'none'}, "
            f"unknown target labels {bad or 'none'}; fix CHATLENS_EMOTION_MAPPING"
        )
    matrix = np.zeros((len(id2label), len(LABELS)), dtype=np.float32)
    for source, target in mapping.items():
        matrix[names[source.lower()], LABELS.index(target)] = 1.0
    if other_label:
        mapped = {names[s.lower()] for s in mapping}
        for i in set(names.values()) - mapped:
            matrix[i, LABELS.index(other_label)] = 1.0
    return matrix


def map_scores(scores: torch.Tensor, matrix: np.ndarray) -> torch.Tensor:
    """(messages, model labels) scores -> (messages, our labels): the best model label feeding each of ours.

    A label nothing feeds scores -inf, so it can never win the arg-max.
    """
    feeds = torch.from_numpy(matrix).bool()
    expanded = scores.unsqueeze(-1).expand(-1, -1, feeds.shape[1])
    return expanded.masked_fill(~feeds, float("-inf")).amax(dim=1)


class EmotionClassifier:
    def __init__(
        self,
        source: str,
        mapping: Mapping[str, str],
        device: torch.device,
        dtype: torch.dtype,
        other_label: str | None = None,
        batch_size: int = 64,
        max_length: int = 256,
        sdpa: bool = True,
        int8: bool = False,
        sort_by_length: bool = True,
    ) -> None:
        self.tokenizer, self.model = load_classifier_model(source, device, dtype, sdpa, int8)
        self.matrix = mapping_matrix(self.model.config.id2label, mapping, other_label)
        # go_emotions checkpoints are multi-label (independent sigmoids); a single-label one gets softmax.
        self.multi_label = self.model.config.problem_type == "multi_label_classification"
        self.labels = list(LABELS)
        self.device, self.batch_size, self.sort_by_length = device, batch_size, sort_by_length
        self.max_length = min(max_length, self.tokenizer.model_max_length)  # type: ignore[attr-defined]
        # The mapping onto our labels decides the answers as much as the weights do.
        self.version = classifier_version(
            source, self.model, dtype, int8, mapping=[dict(mapping), other_label]
        )

    @torch.inference_mode()
    def scores(self, texts: list[str]) -> torch.Tensor:
        n_model_labels = self.matrix.shape[0]
        if not texts:
            return torch.zeros((0, n_model_labels))
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]  # type: ignore[operator]
        pad = self.tokenizer.pad_token_id  # type: ignore[attr-defined]
        logits = batched_logits(self.model, ids, pad, self.device, self.batch_size, self.sort_by_length)
        return torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, -1)

    def predict(self, texts: list[str]) -> list[Output]:
        return top_outputs(map_scores(self.scores(texts), self.matrix), self.labels)


def build(settings: Settings) -> EmotionClassifier:
    return EmotionClassifier(
        settings.emotion_model,
        settings.emotion_mapping,
        other_label=settings.emotion_other_label,
        batch_size=settings.emotion_batch_size,
        **hf_options(settings),
    )
