"""Eval and export a chunk at a time: the same figures as sklearn on whole lists, the same records in
conversation order however small the chunks and sort runs are."""

from __future__ import annotations

import io
import json
import random
from collections import Counter

import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from chatlens.core import run_reader
from chatlens.core.labels import LABELS
from chatlens.core.schemas import Message, Prediction
from chatlens.core.store import RunStore
from eval import export
from eval.evaluate import score_run
from eval.metrics import score_counts
from tests.helpers import store_messages


def test_scores_from_counts_are_sklearns() -> None:
    rng = random.Random(3)
    truth = [rng.choice(LABELS[:5]) for _ in range(500)]
    predicted = [t if rng.random() < 0.6 else rng.choice(LABELS) for t in truth]
    metrics = score_counts("m", Counter(zip(truth, predicted, strict=True)), results=500, enqueued=600)
    labels = metrics.labels
    assert set(labels) == set(truth) | set(predicted)
    assert metrics.accuracy == round(accuracy_score(truth, predicted), 4)
    assert metrics.macro_f1 == round(
        f1_score(truth, predicted, labels=labels, average="macro", zero_division=0), 4
    )
    assert metrics.weighted_f1 == round(
        f1_score(truth, predicted, labels=labels, average="weighted", zero_division=0), 4
    )
    assert metrics.confusion_matrix == confusion_matrix(truth, predicted, labels=labels).tolist()
    p, r, f, s = precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
    for i, scores in enumerate(metrics.per_class):
        assert (scores.precision, scores.recall, scores.f1, scores.support) == pytest.approx(
            (p[i], r[i], f[i], s[i])
        )
    assert metrics.coverage == round(500 / 600, 4)


@pytest.fixture
def run(fake_redis, monkeypatch: pytest.MonkeyPatch) -> RunStore:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(run_reader, "_SCAN_CHUNK", 7)  # many chunks for a small run
    store = RunStore(fake_redis, 3600)
    rng = random.Random(5)
    messages = [
        Message(
            id=f"m{i:03d}",
            conversation_id=f"c{rng.randrange(9)}",
            position=i,
            text=f"t{i}",
            label=rng.choice([None, *LABELS[:4]]),
        )
        for i in range(120)
    ]
    store_messages(store, "r", messages)
    predictions = [
        Prediction(
            message_id=m.id,
            model="m",
            model_version="v1",
            label=rng.choice(LABELS[:4]),
            confidence=0.5,
            batch_size=1,
            batch_latency_ms=1.0,
            worker="w",
        )
        for m in messages[:100]
    ]
    store.write_results("r", "m", predictions, [])
    store.written = (messages, predictions)  # type: ignore[attr-defined]
    return store


def test_a_run_scored_in_chunks_matches_the_whole_lists(run: RunStore) -> None:
    messages, predictions = run.written  # type: ignore[attr-defined]
    label_of = {m.id: m.label for m in messages}
    pairs = [(label_of[p.message_id], p.label) for p in predictions if label_of[p.message_id]]
    (metrics,) = score_run(run, "r")
    expected = score_counts("m", Counter(pairs), results=100, enqueued=120, versions=["v1"])
    assert metrics == expected
    assert metrics.n == len(pairs) and metrics.results == 100 and metrics.coverage == round(100 / 120, 4)


def test_export_in_sort_runs_keeps_conversation_order(run: RunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "_RUN_ROWS", 10)  # 12 runs spilled to disk and merged
    monkeypatch.setattr(export, "_FETCH", 9)
    messages, predictions = run.written  # type: ignore[attr-defined]
    handle = io.StringIO()
    models, records = export.result_records(run, "r")
    assert export.write_records(models, records, "jsonl", handle) == 120
    rows = [json.loads(line) for line in handle.getvalue().splitlines()]
    expected = sorted(messages, key=lambda m: (m.conversation_id, m.position))
    assert [r["message_id"] for r in rows] == [m.id for m in expected]
    predicted = {p.message_id: p.label for p in predictions}
    for row in rows:
        assert row["predictions"].get("m", {}).get("label") == predicted.get(row["message_id"])
