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

from chatlens.store import RunStore

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


def export_results(store: RunStore, run: str, fmt: str, output: Path | None) -> int:
    models, records = result_records(store, run)
    if output is None:
        return write_records(models, records, fmt, sys.stdout)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with partial.open("w", newline="", encoding="utf-8") as handle:
        count = write_records(models, records, fmt, handle)
    partial.replace(output)
    return count
