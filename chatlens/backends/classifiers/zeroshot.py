"""`ZeroShotClassifier`: an NLI model scores each message against one hypothesis per label.

All (message x hypothesis) pairs of a micro-batch go through the model together, sorted by length and
cut into batches, rather than the HF zero-shot pipeline called once per message. As the seed did
(single-label), the entailment logits of a message's hypotheses are soft-maxed over the labels.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from chatlens.backends.classifier import Output, top_outputs
from chatlens.backends.hf import batched_logits, classifier_version, hf_options, load_classifier_model
from chatlens.core.errors import ChatlensError
from chatlens.core.labels import LABELS
from chatlens.core.settings import Settings


def entailment_index(label2id: Mapping[str, int], source: str) -> int:
    """Read from the model's config, never assumed: MNLI checkpoints disagree on the order."""
    for name, index in label2id.items():
        if name.lower().startswith("entail"):
            return int(index)
    raise ChatlensError(
        f"model {source!r} has no 'entailment' label (labels: {', '.join(label2id)}); "
        "the zero-shot classifier needs an NLI model such as facebook/bart-large-mnli"
    )


def label_probabilities(entailment_logits: torch.Tensor, n_labels: int) -> torch.Tensor:
    """(messages * labels,) entailment logits, message-major -> (messages, labels) probabilities."""
    return torch.softmax(entailment_logits.float().view(-1, n_labels), dim=-1)


class ZeroShotClassifier:
    def __init__(
        self,
        source: str,
        template: str,
        verbs: Mapping[str, str],
        device: torch.device,
        dtype: torch.dtype,
        batch_size: int = 64,
        max_length: int = 256,
        sdpa: bool = True,
        int8: bool = False,
        sort_by_length: bool = True,
    ) -> None:
        missing = [label for label in LABELS if label not in verbs]
        if missing or "{}" not in template:
            raise ChatlensError(
                "zero-shot needs a template with {} and a verbal form for every label "
                f"(missing: {', '.join(missing) or 'none'}); see CHATLENS_ZEROSHOT_TEMPLATE / _VERBS"
            )
        self.tokenizer, self.model = load_classifier_model(source, device, dtype, sdpa, int8)
        self.entailment = entailment_index(self.model.config.label2id, source)
        self.labels = list(LABELS)
        self.hypotheses = [template.format(verbs[label]) for label in self.labels]
        self.device, self.batch_size, self.sort_by_length = device, batch_size, sort_by_length
        self.max_length = min(max_length, self.tokenizer.model_max_length)  # type: ignore[attr-defined]
        # The hypotheses are as much the classifier as the weights: another wording, other answers.
        self.version = classifier_version(source, self.model, dtype, int8, hypotheses=self.hypotheses)

    @torch.inference_mode()
    def probabilities(self, texts: list[str]) -> torch.Tensor:
        if not texts:
            return torch.zeros((0, len(self.labels)))
        premises = [t for t in texts for _ in self.hypotheses]
        hypotheses = self.hypotheses * len(texts)
        ids = self.tokenizer(  # type: ignore[operator]
            premises, hypotheses, truncation="only_first", max_length=self.max_length
        )["input_ids"]
        pad = self.tokenizer.pad_token_id  # type: ignore[attr-defined]
        logits = batched_logits(self.model, ids, pad, self.device, self.batch_size, self.sort_by_length)
        return label_probabilities(logits[:, self.entailment], len(self.labels))

    def predict(self, texts: list[str]) -> list[Output]:
        return top_outputs(self.probabilities(texts), self.labels)


def build(settings: Settings) -> ZeroShotClassifier:
    return ZeroShotClassifier(
        settings.zeroshot_model,
        settings.zeroshot_template,
        settings.zeroshot_verbs,
        batch_size=settings.zeroshot_batch_size,
        **hf_options(settings),
    )
