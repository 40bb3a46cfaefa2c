"""`evaluate_run`: read a run's true labels and predictions from Redis, score every model, write it all."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from redis import Redis

from chatlens.core.errors import ChatlensError
from chatlens.core.schemas import Message
from chatlens.core.settings import Settings
from chatlens.core.store import RunStore
from eval.metrics import ModelMetrics, score_counts
from eval.regression import record_evaluation, results_version
from eval.report import plot_confusion, summary_counts, summary_counts_section, write_report
from eval.summaries import score_run_summaries, summary_table


def score_run(store: RunStore, run: str, corrupt_messages: int = 0) -> list[ModelMetrics]:
    """Each model scored a chunk of its results at a time: the chunk's messages are read by id, and only
    the counts of (true, predicted) pairs are kept. A corrupt message counts as enqueued but unscored; a
    model's corrupt result or error entry counts as an error of that model."""
    enqueued = store.message_count(run)
    scored: list[ModelMetrics] = []
    for model in store.models(run):
        seen = len(store.corrupt)
        pairs: Counter[tuple[str, str]] = Counter()
        results = 0
        versions: set[str] = set()
        for chunk in store.prediction_chunks(run, model):
            messages = store.messages_by_id(run, [mid for mid, _ in chunk])
            for mid, prediction in chunk:
                versions.add(prediction.model_version)
                message = messages.get(mid)
                if message is None:
                    continue
                results += 1
                if message.label:
                    pairs[(message.label, prediction.label)] += 1
        errors = sum(len(chunk) for chunk in store.error_chunks(run, model))
        corrupt = len(store.corrupt) - seen
        scored.append(
            score_counts(
                model,
                pairs,
                results=results,
                enqueued=enqueued,
                errors=errors + corrupt,
                versions=sorted(versions),
            )
        )
    return scored


class _StreamedMessages:
    """The run's messages for `score_run_summaries`, read a scan chunk at a time when it iterates them
    (it keeps only the turns of conversations that have a reference summary)."""

    def __init__(self, store: RunStore, run: str) -> None:
        self.store, self.run = RunStore(store.redis, store.ttl_s), run  # its corrupt list is not reported

    def values(self) -> Iterator[Message]:
        for chunk in self.store.message_chunks(self.run):
            for _, message in chunk:
                yield message


def evaluate_run(connection: Redis, settings: Settings, run: str, out_dir: Path, track: bool = True) -> dict:
    store = RunStore(connection, settings.result_ttl_s)
    info = store.run_info(run)
    if info is None:
        raise ChatlensError(
            f"no run named {run!r} in Redis; produce it first with `chatlens produce FILE --run {run}`"
        )
    version = results_version(connection, run)  # before reading: a write during the evaluation is news
    # One pass over the messages to find the corrupt ones (listed first, as the whole-run read did);
    # HLEN counts valid and corrupt alike: every stored message was enqueued.
    for _ in store.message_chunks(run):
        pass
    enqueued = store.message_count(run)
    models = score_run(store, run)
    summaries = score_run_summaries(
        store,
        run,
        _StreamedMessages(store, run),  # type: ignore[arg-type]  # it reads .values() only
        settings.summary_references,
    )
    counts = summary_counts(
        store.summaries(run), len(store.summary_errors(run)), store.conversation_count(run)
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "run": run,
        "messages": enqueued,
        "dataset_hash": info.dataset_hash,
        "models": {m.model: m.summary() for m in models},
        "summaries": summaries,
        "conversations_summarised": store.summary_count(run),
        "summary_counts": counts,
        # Entries in Redis that are not the record their key promises: skipped, counted, listed.
        "corrupt_records": [{"key": c.key, "field": c.field, "error": c.error} for c in store.corrupt],
    }
    (out_dir / "metrics.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    write_report(out_dir / "report.md", run, enqueued, models)
    counts_section = summary_counts_section(counts)
    if counts_section:
        with (out_dir / "report.md").open("a", encoding="utf-8") as handle:
            handle.write(counts_section)
    if store.corrupt:
        with (out_dir / "report.md").open("a", encoding="utf-8") as handle:
            handle.write(
                f"\n## Corrupt records\n\n{len(store.corrupt)} entries in Redis are not valid records; "
                "they were skipped (a message: unscored, a result: an error of its model):\n\n"
                + "".join(f"- `{c.key}` `{c.field}`: {c.error}\n" for c in store.corrupt[:50])
            )
    if summaries:
        with (out_dir / "report.md").open("a", encoding="utf-8") as handle:
            handle.write(
                "\n## Summaries\n\nAgainst the reference summaries of the conversations that have one "
                f"(`{settings.summary_references}`):\n\n" + "\n".join(summary_table(summaries)) + "\n"
            )
    for m in models:
        plot_confusion(out_dir / f"confusion_{m.model}.png", m, run)
    if track and models:
        from eval.tracking import log_evaluation

        document["mlflow_run_ids"] = log_evaluation(
            settings.mlflow_tracking_uri,
            settings.mlflow_experiment,
            run,
            info.dataset_hash,
            enqueued,
            models,
            out_dir,
        )
    if track and summaries:
        from eval.tracking import log_summary_evaluation

        earlier = document.get("mlflow_run_ids")
        document["mlflow_run_ids"] = (earlier if isinstance(earlier, list) else []) + log_summary_evaluation(
            settings.mlflow_tracking_uri, settings.mlflow_experiment, run, summaries, out_dir
        )
    record_evaluation(connection, settings, document, models, out_dir, version)  # eval/regression.py
    return document
