"""Turning cleaned rows into `Message` records and enqueueing them as micro-batches on RQ."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
from redis import Redis
from redis.client import Pipeline
from rq import Queue, Retry, Worker

from chatlens.core import queues
from chatlens.core.schemas import BatchItem, Message, MicroBatch, RunInfo, message_id
from chatlens.core.settings import Settings
from chatlens.core.store import MessageStats, RunStore

_PIECES = re.compile(r"\w+|[^\w\s]")
# Micro-batches sent per Redis round trip.
BATCHES_PER_ROUND_TRIP = 8


@dataclass(frozen=True)
class EnqueueOutcome:
    enqueued: int
    already_present: int
    batches: int
    conversations: frozenset[str]  # the conversations that received new messages


def to_messages(rows: pd.DataFrame) -> list[Message]:
    return [
        Message(
            id=message_id(r.conversation_id, int(r.position), r.message),
            conversation_id=r.conversation_id,
            position=int(r.position),
            text=r.message,
            label=r.label,
        )
        for r in rows.itertuples(index=False)
    ]


def token_estimate(text: str) -> tuple[int, int]:
    """Words and punctuation marks: what a BERT-style pre-tokenizer splits on, a close proxy for the
    model's token count (characters alone leave ~10 % more padding on Topical-Chat)."""
    return len(_PIECES.findall(text)), len(text)


def micro_batches(messages: list[Message], size: int) -> list[list[Message]]:
    # Batches of similar length pad little: on CPU an unsorted batch of 64 runs slower than 64 single calls.
    ordered = sorted(messages, key=lambda m: token_estimate(m.text))
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def job_options(settings: Settings) -> dict:
    """What every producer job gets: a timeout, retries with backoff, and how long RQ keeps it."""
    return {
        "timeout": settings.job_timeout_s,
        "result_ttl": 3600,
        "failure_ttl": settings.result_ttl_s,
        "retry": Retry(max=len(settings.retry_intervals_s), interval=settings.retry_intervals_s),
    }


def classify_targets(connection: Redis, settings: Settings) -> list[tuple[str, Queue]]:
    """Each enabled classifier with its queue: every micro-batch goes to each of them."""
    return [
        (c, Queue(queues.classify_queue(c), connection=connection, serializer=queues.SERIALIZER))
        for c in settings.classifiers
    ]


def enqueue_classify_jobs(
    pipe: Pipeline, targets: list[tuple[str, Queue]], run: str, payloads: list[dict], options: dict
) -> None:
    """One classify job per micro-batch payload and classifier, added to `pipe` (the caller executes it
    together with the messages, so a batch is never stored without its jobs or the reverse)."""
    for classifier, queue in targets:
        jobs = [
            Queue.prepare_data(
                queues.CLASSIFY_JOB,
                kwargs={"batch": payload, "classifier": classifier},
                description=f"{classifier}: {len(payload['items'])} messages of run {run}",
                **options,
            )
            for payload in payloads
        ]
        queue.enqueue_many(jobs, pipeline=pipe)


def enqueue_messages(
    connection: Redis,
    settings: Settings,
    run: str,
    messages: list[Message],
    on_batch: Callable[[int], None] | None = None,
) -> EnqueueOutcome:
    """Store the messages and enqueue one classify job per micro-batch and enabled classifier.

    Messages already stored under this run are skipped. Each group of micro-batches is written in one
    MULTI/EXEC pipeline, so a batch's messages are never stored without its jobs, or the reverse.
    """
    store = RunStore(connection, settings.result_ttl_s)
    present = store.existing_ids(run, [m.id for m in messages])
    new = [m for m in messages if m.id not in present]
    targets = classify_targets(connection, settings)
    options = job_options(settings)
    batches = micro_batches(new, settings.batch_size)
    for start in range(0, len(batches), BATCHES_PER_ROUND_TRIP):
        group = batches[start : start + BATCHES_PER_ROUND_TRIP]
        with connection.pipeline() as pipe:
            stats = MessageStats()
            for batch in group:
                for m in batch:
                    stats.add(m.id, m.label)
            store.add_new_messages(pipe, run, {m.id: m.model_dump_json() for b in group for m in b}, stats)
            payloads = [
                MicroBatch(run=run, items=[BatchItem(id=m.id, text=m.text) for m in batch]).model_dump(
                    mode="json"
                )
                for batch in group
            ]
            enqueue_classify_jobs(pipe, targets, run, payloads, options)
            pipe.execute()
        if on_batch:
            on_batch(len(group))
    return EnqueueOutcome(
        enqueued=len(new),
        already_present=len(present),
        batches=len(batches),
        conversations=frozenset(m.conversation_id for m in new),
    )


def record_run(connection: Redis, ttl_s: int, run: str, source: str, classifiers: list[str]) -> RunInfo:
    """Describe the run as it now stands in Redis (a re-produce adds to it, never replaces it)."""
    store = RunStore(connection, ttl_s)
    previous = store.run_info(run)
    # Counters kept as messages are stored (`RunStore.add_new_messages`): nothing is read back.
    labelled, digest = store.message_stats(run)
    info = RunInfo(
        run=run,
        source=source,
        dataset_hash=digest,
        messages=store.message_count(run),
        labelled=labelled,
        classifiers=sorted(set(classifiers) | set(previous.classifiers if previous else [])),
        created_at=previous.created_at if previous else datetime.now(UTC),
    )
    store.save_run_info(info)
    return info


def queues_without_workers(connection: Redis, names: list[str]) -> list[str]:
    served: set[str] = set()
    for worker in Worker.all(connection=connection):
        served.update(worker.queue_names())
    return [n for n in names if n not in served]
