"""`evaluate_run`: read a run's true labels and predictions from Redis, score every model, write it all."""

from __future__ import annotations

import json
from pathlib import Path

from redis import Redis

from chatlens.core.errors import ChatlensError
from chatlens.core.schemas import Message
from chatlens.core.settings import Settings
from chatlens.core.store import RunStore
from eval.metrics import ModelMetrics, score
from eval.regression import record_evaluation, results_version
from eval.report import plot_confusion, write_report
from eval.summaries import score_run_summaries, summary_table


def score_run(
    store: RunStore, run: str, messages: dict[str, Message], corrupt_messages: int = 0
) -> list[ModelMetrics]:
    """A corrupt message counts as enqueued but unscored; a model's corrupt result or error entry counts
    as an error of that model."""
    scored: list[ModelMetrics] = []
    for model in store.models(run):
        seen = len(store.corrupt)
        predictions = store.predictions(run, model)
        errors = store.errors(run, model)
        corrupt = len(store.corrupt) - seen
        labelled = [
            (m.label, predictions[mid].label) for mid, m in messages.items() if m.label and mid in predictions
        ]
        scored.append(
            score(
                model,
                [t for t, _ in labelled],
                [p for _, p in labelled],
                results=sum(1 for mid in predictions if mid in messages),
                enqueued=len(messages) + corrupt_messages,
                errors=len(errors) + corrupt,
                versions=sorted({p.model_version for p in predictions.values()}),
            )
        )
    return scored


def evaluate_run(connection: Redis, settings: Settings, run: str, out_dir: Path, track: bool = True) -> dict:
    store = RunStore(connection, settings.result_ttl_s)
    info = store.run_info(run)
    if info is None:
        raise ChatlensError(
            f"no run named {run!r} in Redis; produce it first with `chatlens produce FILE --run {run}`"
        )
    version = results_version(connection, run)  # before reading: a write during the evaluation is news
    messages = store.messages(run)  # read once: the models and the summaries are scored against it
    corrupt_messages = len(store.corrupt)
    enqueued = len(messages) + corrupt_messages
    models = score_run(store, run, messages, corrupt_messages)
    summaries = score_run_summaries(store, run, messages, settings.summary_references)
    out_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "run": run,
        "messages": enqueued,
        "dataset_hash": info.dataset_hash,
        "models": {m.model: m.summary() for m in models},
        "summaries": summaries,
        "conversations_summarised": store.summary_count(run),
        # Entries in Redis that are not the record their key promises: skipped, counted, listed.
        "corrupt_records": [{"key": c.key, "field": c.field, "error": c.error} for c in store.corrupt],
    }
    (out_dir / "metrics.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    write_report(out_dir / "report.md", run, enqueued, models)
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
