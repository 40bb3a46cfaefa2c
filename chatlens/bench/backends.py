"""`chatlens bench --backend zeroshot|emotion`: messages/s of one backend, variant by variant, on CPU."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from chatlens.backends.classifiers.emotion import EmotionClassifier
from chatlens.backends.classifiers.zeroshot import ZeroShotClassifier
from chatlens.bench.speed import save_full_size, tokens_per_message
from chatlens.core.settings import Settings

# (name, sdpa, int8, sort by length)
VARIANTS = [
    ("sdpa + sorted (default)", True, False, True),
    ("eager attention", False, False, True),
    ("unsorted", True, False, False),
    ("int8 dynamic", True, True, True),
]


def run_backend_bench(settings: Settings, backend: str, texts: list[str], threads: int) -> dict:
    torch.set_num_threads(threads)
    device = torch.device("cpu")
    results: dict[str, float] = {}
    agreement: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = str(save_full_size(backend, Path(tmp) / backend, texts))
        reference: list[str] | None = None
        for name, sdpa, int8, sort in VARIANTS:
            if backend == "zeroshot":
                classifier: ZeroShotClassifier | EmotionClassifier = ZeroShotClassifier(
                    path, settings.zeroshot_template, settings.zeroshot_verbs, device, torch.float32,
                    batch_size=settings.zeroshot_batch_size, sdpa=sdpa, int8=int8, sort_by_length=sort,
                )  # fmt: skip
            else:
                classifier = EmotionClassifier(
                    path, settings.emotion_mapping, device, torch.float32,
                    batch_size=settings.emotion_batch_size, sdpa=sdpa, int8=int8, sort_by_length=sort,
                )  # fmt: skip
            classifier.predict(texts[:2])  # warm-up
            started = time.perf_counter()
            labels = [o.label for o in classifier.predict(texts)]
            results[name] = round(len(texts) / (time.perf_counter() - started), 2)
            reference = reference or labels
            agreement[name] = round(
                sum(a == b for a, b in zip(labels, reference, strict=True)) / len(labels), 3
            )
        tokens = tokens_per_message(classifier.tokenizer, texts)
    return {
        "backend": backend,
        "messages": len(texts),
        "threads": threads,
        "device": "cpu",
        "weights": "random (full-size architecture)",
        "tokens_per_message": round(tokens, 1),
        "msgs_per_s": results,
        # Random weights make labels near ties, so int8 agreement here is a lower bound, not accuracy.
        "label_agreement_with_default_variant": agreement,
    }
