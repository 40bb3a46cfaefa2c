"""Enqueueing summary jobs on the queue of a summary backend: several conversations per job for a batched
backend (`queues.BATCHED_SUMMARY_BACKENDS`), one per job for a generative one."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

from redis import Redis
from rq import Queue
from rq.queue import EnqueueData

from chatlens.core import queues
from chatlens.core.schemas import Conversation, Message
from chatlens.core.settings import Settings
from producer.enqueue import job_options

JOBS_PER_ROUND_TRIP = 200


def conversations(run: str, messages: Iterable[Message]) -> list[Conversation]:
    """Each conversation's turns in position order; conversations in order of first appearance."""
    grouped: dict[str, list[Message]] = defaultdict(list)
    for message in messages:
        grouped[message.conversation_id].append(message)
    return [
        Conversation(
            run=run, conversation_id=cid, turns=[m.text for m in sorted(turns, key=lambda m: m.position)]
        )
        for cid, turns in grouped.items()
    ]


def conversations_per_job(settings: Settings, backend: str) -> int:
    return settings.summary_job_conversations if backend in queues.BATCHED_SUMMARY_BACKENDS else 1


def summary_jobs(settings: Settings, items: Sequence[Conversation], backend: str) -> list[EnqueueData]:
    """The jobs that summarise `items` on `backend`'s queue, for `Queue.enqueue_many`."""
    options = job_options(settings)
    if backend not in queues.BATCHED_SUMMARY_BACKENDS:
        return [
            Queue.prepare_data(
                queues.SUMMARISE_JOB,
                kwargs={"conversation": c.model_dump(mode="json"), "backend": backend},
                description=f"summarise ({backend}) conversation {c.conversation_id} of run {c.run}",
                **options,
            )
            for c in items
        ]
    size = settings.summary_job_conversations
    chunks = [items[start : start + size] for start in range(0, len(items), size)]
    return [
        Queue.prepare_data(
            queues.SUMMARISE_MANY_JOB,
            kwargs={"conversations": [c.model_dump(mode="json") for c in chunk], "backend": backend},
            description=f"summarise ({backend}) {len(chunk)} conversations of run {chunk[0].run}",
            **options,
        )
        for chunk in chunks
    ]


def enqueue_summaries(
    connection: Redis,
    settings: Settings,
    items: list[Conversation],
    backend: str,
    on_conversations: Callable[[int], None] | None = None,
) -> int:
    """Summary jobs for `items` on `summarise-<backend>` (see `summary_jobs`); a conversation summarised
    again overwrites its earlier summary, so re-summarising is safe. Returns the number of conversations;
    `on_conversations` is told how many each round trip enqueued (a progress bar counts conversations)."""
    queue = Queue(queues.summarise_queue(backend), connection=connection, serializer=queues.SERIALIZER)
    # Whole jobs per round trip: a group of conversations is a multiple of a job's.
    step = JOBS_PER_ROUND_TRIP * conversations_per_job(settings, backend)
    for start in range(0, len(items), step):
        group = items[start : start + step]
        with connection.pipeline() as pipe:
            queue.enqueue_many(summary_jobs(settings, group, backend), pipeline=pipe)
            pipe.execute()
        if on_conversations:
            on_conversations(len(group))
    return len(items)
