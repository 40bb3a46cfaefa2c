"""Exporting a run's predictions: one record per message, with every model's prediction in it.

Each model writes its own hash in Redis, so workers of different classifiers never race on a record;
the export joins them per message.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from chatlens.core.store import RunStore

BASE_FIELDS = ["message_id", "conversation_id", "position", "message", "label"]


def result_records(store: RunStore, run: str) -> tuple[list[str], Iterator[dict]]:
    """(model names, records in conversation order); a model with no result for a message is absent."""
    messages = store.messages(run)
    models = store.models(run)
    predictions = {model: store.predictions(run, model) for model in models}

    def records() -> Iterator[dict]:
        for m in sorted(messages.values(), key=lambda m: (m.conversation_id, m.position)):
            found = {model: predictions[model].get(m.id) for model in models}
            yield {
                "message_id": m.id,
                "conversation_id": m.conversation_id,
                "position": m.position,
                "message": m.text,
                "label": m.label,
                "predictions": {
                    model: {
                        "label": p.label,
                        "confidence": round(p.confidence, 6),
                        "model_version": p.model_version,
                    }
                    for model, p in found.items()
                    if p is not None
                },
            }

    return models, records()


def write_records(models: list[str], records: Iterator[dict], fmt: str, handle: TextIO) -> int:
    count = 0
    if fmt == "csv":
        columns = [
            f"{model}.{field}" for model in models for field in ("label", "confidence", "model_version")
        ]
        writer = csv.DictWriter(handle, fieldnames=BASE_FIELDS + columns)
        writer.writeheader()
        for record in records:
            flat = {k: record[k] for k in BASE_FIELDS}
            for model, p in record["predictions"].items():
                flat.update({f"{model}.{field}": value for field, value in p.items()})
            writer.writerow(flat)
            count += 1
    else:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count


SUMMARY_FIELDS = [
    "conversation_id",
    "backend",
    "model_id",
    "text",
    "turns",
    "input_tokens",
    "output_tokens",
    "calls",
    "latency_ms",
    "worker",
    "created_at",
]


def write_summaries(store: RunStore, run: str, fmt: str, handle: TextIO) -> int:
    summaries = sorted(store.summaries(run).values(), key=lambda s: s.conversation_id)
    if fmt == "csv":
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        writer.writerows(s.model_dump(mode="json") for s in summaries)
    else:
        for s in summaries:
            handle.write(json.dumps(s.model_dump(mode="json"), ensure_ascii=False) + "\n")
    return len(summaries)


def export_results(store: RunStore, run: str, fmt: str, output: Path | None, summaries: bool = False) -> int:
    """Write the run's predictions (or, with `summaries`, its conversation summaries) to `output` or
    stdout; a file is written whole or not at all."""

    def write(handle: TextIO) -> int:
        if summaries:
            return write_summaries(store, run, fmt, handle)
        models, records = result_records(store, run)
        return write_records(models, records, fmt, handle)

    if output is None:
        return write(sys.stdout)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with partial.open("w", newline="", encoding="utf-8") as handle:
        count = write(handle)
    partial.replace(output)
    return count
