"""Enqueueing one summary job per conversation, on the queue of the configured summary backend."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable

from redis import Redis
from rq import Queue

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


def enqueue_summaries(
    connection: Redis,
    settings: Settings,
    items: list[Conversation],
    backend: str,
    on_jobs: Callable[[int], None] | None = None,
) -> int:
    """One job per conversation on `summarise-<backend>`; a conversation summarised again overwrites
    its earlier summary, so re-summarising is safe."""
    queue = Queue(queues.summarise_queue(backend), connection=connection, serializer=queues.SERIALIZER)
    options = job_options(settings)
    for start in range(0, len(items), JOBS_PER_ROUND_TRIP):
        group = items[start : start + JOBS_PER_ROUND_TRIP]
        jobs = [
            Queue.prepare_data(
                queues.SUMMARISE_JOB,
                kwargs={"conversation": c.model_dump(mode="json"), "backend": backend},
                description=f"summarise ({backend}) conversation {c.conversation_id} of run {c.run}",
                **options,
            )
            for c in group
        ]
        with connection.pipeline() as pipe:
            queue.enqueue_many(jobs, pipeline=pipe)
            pipe.execute()
        if on_jobs:
            on_jobs(len(group))
    return len(items)
