"""The classifiers and summarisers loaded in this process: each is built once, on first use, and kept.

A worker preloads its classifiers before taking jobs, so a job only ever finds them here. Each load is
counted in Redis, which is how the tests and `chatlens bench` prove there is one load per process.
"""

from __future__ import annotations

from redis import Redis

from chatlens import SUMMARY_BACKENDS
from chatlens.errors import ChatlensError
from chatlens.settings import Settings
from chatlens.store import RunStore
from worker.classifier import Classifier
from worker.minilm import MiniLMClassifier
from worker.summariser import Summariser

_loaded: dict[str, Classifier] = {}
_summarisers: dict[str, Summariser] = {}

KNOWN = ("default", "zeroshot", "emotion", "finetuned")


def build_classifier(key: str, settings: Settings) -> Classifier:
    if key == "default":
        return MiniLMClassifier(
            head_dir=settings.head_path,
            encoder=settings.encoder_path,
            batch_size=settings.inference_batch_size,
            max_length=settings.max_length,
            int8=settings.quantize_int8,
        )
    if key not in KNOWN:
        raise ChatlensError(
            f"unknown classifier {key!r}; known: {', '.join(KNOWN)} (see CHATLENS_CLASSIFIERS)"
        )
    from worker.hf import resolve_device, resolve_dtype

    device = resolve_device(settings.device)
    common = {
        "device": device,
        "dtype": resolve_dtype(settings.dtype, device),
        "max_length": settings.max_length,
        "sdpa": settings.sdpa,
        "int8": settings.quantize_int8,
    }
    if key == "finetuned":
        from pathlib import Path

        from worker.finetuned import FineTunedClassifier, RegistryClassifier

        if settings.finetuned_model.startswith("models:/"):
            return RegistryClassifier(
                settings.finetuned_model, settings.mlflow_tracking_uri, device, settings.inference_batch_size,
                settings.registry_poll_s,
            )  # fmt: skip
        return FineTunedClassifier(
            Path(settings.finetuned_model),
            "minilm-ft",
            settings.finetuned_model,
            device,
            settings.inference_batch_size,
        )
    if key == "zeroshot":
        from worker.zeroshot import ZeroShotClassifier

        return ZeroShotClassifier(
            settings.zeroshot_model,
            settings.zeroshot_template,
            settings.zeroshot_verbs,
            batch_size=settings.zeroshot_batch_size,
            **common,
        )
    from worker.emotion import EmotionClassifier

    return EmotionClassifier(
        settings.emotion_model,
        settings.emotion_mapping,
        other_label=settings.emotion_other_label,
        batch_size=settings.emotion_batch_size,
        **common,
    )


def get_classifier(key: str, settings: Settings, connection: Redis) -> Classifier:
    if key not in _loaded:
        classifier = build_classifier(key, settings)
        _loaded[key] = classifier
        RunStore(connection, settings.result_ttl_s).record_model_load(classifier.name)
    return _loaded[key]


def build_summariser(backend: str, settings: Settings) -> Summariser:
    # The configured model belongs to the configured backend; any other backend uses its own default.
    if backend != settings.summary_backend:
        settings = settings.model_copy(update={"summary_model": None})
    if backend == "extractive":
        from worker.extractive import ExtractiveSummariser

        return ExtractiveSummariser.from_settings(settings)
    if backend == "transformers":
        from worker.hf_summariser import HFSummariser

        return HFSummariser.from_settings(settings)
    if backend == "mlx":
        from worker.mlx_summariser import MLXSummariser

        return MLXSummariser.from_settings(settings)
    raise ChatlensError(f"unknown summary backend {backend!r}; known: {', '.join(SUMMARY_BACKENDS)}")


def get_summariser(backend: str, settings: Settings, connection: Redis) -> Summariser:
    if backend not in _summarisers:
        summariser = build_summariser(backend, settings)
        _summarisers[backend] = summariser
        RunStore(connection, settings.result_ttl_s).record_model_load(f"summarise-{backend}")
    return _summarisers[backend]
