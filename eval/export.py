"""Exporting a run's predictions, one row per message and model."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from chatlens.store import RunStore

FIELDS = [
    "message_id",
    "conversation_id",
    "position",
    "message",
    "label",
    "model",
    "predicted",
    "confidence",
    "model_version",
]


def result_rows(store: RunStore, run: str) -> Iterator[dict]:
    messages = store.messages(run)
    ordered = sorted(messages.values(), key=lambda m: (m.conversation_id, m.position))
    for model in store.models(run):
        predictions = store.predictions(run, model)
        for m in ordered:
            p = predictions.get(m.id)
            if p is None:
                continue
            yield {
                "message_id": m.id,
                "conversation_id": m.conversation_id,
                "position": m.position,
                "message": m.text,
                "label": m.label,
                "model": model,
                "predicted": p.label,
                "confidence": round(p.confidence, 6),
                "model_version": p.model_version,
            }


def write_rows(rows: Iterator[dict], fmt: str, handle: TextIO) -> int:
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
            count += 1
    else:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def export_results(store: RunStore, run: str, fmt: str, output: Path | None) -> int:
    if output is None:
        return write_rows(result_rows(store, run), fmt, sys.stdout)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with partial.open("w", newline="", encoding="utf-8") as handle:
        count = write_rows(result_rows(store, run), fmt, handle)
    partial.replace(output)
    return count
