"""RQ job functions: plain importable functions. The worker passes its `WorkerContext` first; the
producer's JSON arguments follow."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from rq.timeouts import JobTimeoutException

from chatlens.backends.classifier import Classifier, Output
from chatlens.backends.summariser import Summariser, SummaryText
from chatlens.core.schemas import Conversation, MessageError, MicroBatch, Prediction, Summary, SummaryError
from chatlens.core.store import process_name
from worker.context import WorkerContext

T = TypeVar("T")
R = TypeVar("R")


def classify_batch(ctx: WorkerContext, batch: dict, classifier: str) -> dict:
    """Classify one micro-batch and write one result per message, in one Redis round trip.

    Results, errors and metrics go under `classifier`, the registry key the job was queued for: the
    model's one name. What exactly produced them is the model's `version`, kept with each prediction.
    A message the model fails on is recorded as an error for that message; the worker goes on.
    """
    store = ctx.store
    micro = MicroBatch.model_validate(batch)
    model = ctx.classifier(classifier)
    refresh = getattr(model, "refresh", None)
    if refresh is not None:  # a registry alias may have moved: swap models between batches
        before = model.version
        refresh()
        if model.version != before:
            store.record_model_load(classifier)
            ctx.metrics.model_loaded(classifier)
    texts = [item.text for item in micro.items]

    started = time.perf_counter()
    outputs, failures = _predict_guarded(model, texts)
    latency_ms = (time.perf_counter() - started) * 1000.0

    worker = process_name()
    predictions = [
        Prediction(
            message_id=item.id,
            model=classifier,
            model_version=model.version,
            label=out.label,
            confidence=out.confidence,
            batch_size=len(texts),
            batch_latency_ms=round(latency_ms, 3),
            worker=worker,
        )
        for item, out in zip(micro.items, outputs, strict=True)
        if out is not None
    ]
    errors = [
        MessageError(message_id=micro.items[i].id, model=classifier, error=reason)
        for i, reason in failures.items()
    ]
    store.write_results(micro.run, classifier, predictions, errors)
    ctx.metrics.batch(classifier, len(texts), latency_ms / 1000.0, len(predictions), len(errors))
    store.record_peak_rss(peak_rss_mb())
    return {"run": micro.run, "model": classifier, "predicted": len(predictions), "errors": len(errors)}


def summarise_conversation(ctx: WorkerContext, conversation: dict, backend: str) -> dict:
    """Summarise one whole conversation and write the summary under its conversation id.

    A failure is recorded for the conversation and re-raised, so RQ retries it with backoff. The producer
    sends a generative backend's conversations here, one per job (an older producer sent every backend's).
    """
    store = ctx.store
    item = Conversation.model_validate(conversation)
    summariser = ctx.summariser(backend)
    started = time.perf_counter()
    try:
        result = summariser.summarise(item.turns)
    except Exception as exc:
        store.write_summary_error(
            item.run, SummaryError(conversation_id=item.conversation_id, backend=backend, error=_reason(exc))
        )
        raise
    latency_ms = (time.perf_counter() - started) * 1000.0
    store.write_summary(item.run, _summary(summariser, item, result, latency_ms))
    ctx.metrics.summary(summariser.backend)
    store.record_peak_rss(peak_rss_mb())
    return {"run": item.run, "conversation_id": item.conversation_id, "words": len(result.text.split())}


def summarise_conversations(ctx: WorkerContext, conversations: list[dict], backend: str) -> dict:
    """Summarise several conversations, in one `summarise_many` call where the backend has one, and write
    each summary under its conversation id.

    A conversation that fails is recorded as an error while the others are written; then the job raises,
    so RQ retries it with backoff (a summary written again overwrites the first, so the retry is safe).
    """
    store = ctx.store
    items = [Conversation.model_validate(c) for c in conversations]
    summariser = ctx.summariser(backend)
    started = time.perf_counter()
    results, failures = _summarise_guarded(summariser, [item.turns for item in items])
    # One pass serves every conversation, so none has a latency of its own: each gets an equal share.
    latency_ms = (time.perf_counter() - started) * 1000.0 / max(1, len(items))
    for item, result in zip(items, results, strict=True):
        if result is not None:
            store.write_summary(item.run, _summary(summariser, item, result, latency_ms))
            ctx.metrics.summary(summariser.backend)
    for i, reason in failures.items():
        failed = SummaryError(conversation_id=items[i].conversation_id, backend=backend, error=reason)
        store.write_summary_error(items[i].run, failed)
    store.record_peak_rss(peak_rss_mb())
    if failures:
        first = min(failures)
        raise RuntimeError(
            f"{len(failures)} of {len(items)} conversations failed to summarise "
            f"(first: {items[first].conversation_id}: {failures[first]})"
        )
    return {
        "run": items[0].run if items else None,
        "conversations": len(items),
        "summarised": len(items),
        "errors": 0,
    }


def _summary(summariser: Summariser, item: Conversation, result: SummaryText, latency_ms: float) -> Summary:
    return Summary(
        conversation_id=item.conversation_id,
        backend=summariser.backend,
        model_id=summariser.model_id,
        text=result.text,
        turns=len(item.turns),
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        calls=result.calls,
        latency_ms=round(latency_ms, 3),
        worker=process_name(),
    )


def _summarise_guarded(
    summariser: Summariser, conversations: list[list[str]]
) -> tuple[list[SummaryText | None], dict[int, str]]:
    many = getattr(summariser, "summarise_many", None)
    if many is not None:
        try:
            return list(many(conversations)), {}
        except JobTimeoutException:
            raise  # the job's time is up: summarising one by one would run on with no timeout left to stop it
        except Exception:
            pass  # one conversation fails the whole call: find it below rather than fail them all
    return _each_guarded(summariser.summarise, conversations)


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _predict_guarded(model: Classifier, texts: list[str]) -> tuple[list[Output | None], dict[int, str]]:
    try:
        return list(model.predict(texts)), {}
    except JobTimeoutException:
        raise  # the job's time is up: a per-message retry would run on with no timeout left to stop it
    except Exception:
        # Find the message(s) at fault rather than failing the whole batch.
        return _each_guarded(lambda text: model.predict([text])[0], texts)


def _each_guarded(call: Callable[[T], R], items: Sequence[T]) -> tuple[list[R | None], dict[int, str]]:
    """`call` on each item alone: one that fails is recorded by index and the others go on."""
    results: list[R | None] = []
    failures: dict[int, str] = {}
    for i, item in enumerate(items):
        try:
            results.append(call(item))
        except JobTimeoutException:
            raise  # the job's time is up: going on would run with no timeout left to stop it
        except Exception as exc:
            results.append(None)
            failures[i] = _reason(exc)
    return results, failures


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux
