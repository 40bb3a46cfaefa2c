"""Exporting a run's predictions: one record per message, with every model's prediction in it.

Each model writes its own hash in Redis, so workers of different classifiers never race on a record;
the export joins them per message.
"""

from __future__ import annotations

import csv
import heapq
import itertools
import json
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

from chatlens.core.store import RunStore

BASE_FIELDS = ["message_id", "conversation_id", "position", "message", "label"]


_RUN_ROWS = 200_000  # (conversation, position, id) keys sorted in memory at a time, then merged from disk
_FETCH = 2_000


def result_records(store: RunStore, run: str) -> tuple[list[str], Iterator[dict]]:
    """(model names, records in conversation order); a model with no result for a message is absent.

    Bounded memory for a run of any size: the messages' sort keys are sorted in runs spilled to temp
    files and merged, then messages and predictions are read by id, a chunk at a time."""
    models = store.models(run)

    def records() -> Iterator[dict]:
        with ExitStack() as stack:
            ordered = heapq.merge(*(_read_run(stack, path) for path in _sorted_runs(stack, store, run)))
            while chunk := [mid for _, _, mid in itertools.islice(ordered, _FETCH)]:
                messages = store.messages_by_id(run, chunk)
                found = {model: store.predictions_by_id(run, model, chunk) for model in models}
                for mid in chunk:
                    m = messages.get(mid)
                    if m is None:
                        continue
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
                            for model in models
                            if (p := found[model].get(mid)) is not None
                        },
                    }

    return models, records()


def _sorted_runs(stack: ExitStack, store: RunStore, run: str) -> list[Path]:
    directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="chatlens-export-")))
    paths: list[Path] = []
    keys: list[tuple[str, int, str]] = []

    def spill() -> None:
        keys.sort()
        path = directory / f"{len(paths)}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(k) + "\n" for k in keys)
        paths.append(path)
        keys.clear()

    for chunk in store.message_chunks(run):
        keys.extend((m.conversation_id, m.position, m.id) for _, m in chunk)
        if len(keys) >= _RUN_ROWS:
            spill()
    if keys or not paths:
        spill()
    return paths


def _read_run(stack: ExitStack, path: Path) -> Iterator[tuple[str, int, str]]:
    handle = stack.enter_context(path.open(encoding="utf-8"))
    for line in handle:
        cid, position, mid = json.loads(line)
        yield cid, position, mid


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
