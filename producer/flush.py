"""Writing a group of checked messages to Redis: skip those already stored, wait while a queue is at
its bound, then store the new ones and enqueue their micro-batches in one MULTI/EXEC pipeline.

A message is a plain tuple until here and is JSON-encoded once for the messages hash; its job argument
is the {id, text} pair that RQ's serializer encodes with the job.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from redis import Redis
from rq import Queue

from chatlens.core import keys, queues
from chatlens.core.message_stats import MessageStats
from chatlens.core.schemas import Conversation
from chatlens.core.settings import Settings
from chatlens.core.store import RunStore
from producer.cleaning import Ready
from producer.enqueue import classify_targets, enqueue_classify_jobs, job_options
from producer.summaries import summary_jobs

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
WAIT_POLL_S = 0.5


@dataclass
class Written:
    enqueued: int = 0
    already_present: int = 0
    batches: int = 0
    summaries: int = 0  # conversations sent to be summarised (a batched backend packs several per job)
    waited_s: float = 0.0


class BatchWriter:
    def __init__(
        self,
        connection: Redis,
        settings: Settings,
        run: str,
        max_queued: int,
        on_wait: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.connection, self.settings, self.run = connection, settings, run
        self.store = RunStore(connection, settings.result_ttl_s)
        self.max_queued, self.on_wait = max_queued, on_wait
        self.options = job_options(settings)
        self.targets = classify_targets(connection, settings)
        self.summary_queue = Queue(
            queues.summarise_queue(settings.summary_backend),
            connection=connection,
            serializer=queues.SERIALIZER,
        )
        self.totals = Written()

    def write(self, group: list[Ready]) -> list[Ready]:
        """Store and enqueue the new messages of `group`; returns those that were new."""
        if not group:
            return []
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.messages(self.run), [m[0] for m in group])
            for _, queue in self.targets:
                pipe.llen(queue.key)
            flags, *lengths = pipe.execute()
        new = [m for m, flag in zip(group, flags, strict=True) if flag is None]
        self.totals.already_present += len(group) - len(new)
        if not new:
            return new
        size = self.settings.batch_size
        batches = -(-len(new) // size)
        self._wait_for_room([q for _, q in self.targets], batches, lengths)
        # Batches of similar length pad little; the sort is within the group (a stream has no "all").
        new.sort(key=lambda m: len(m[3]))
        stats = MessageStats()
        per_conversation: Counter[str] = Counter()
        encoded: dict[str, str] = {}
        for mid, cid, position, text, label, previous in new:
            per_conversation[cid] += 1
            # The Message record's JSON, written directly: one encoder call per string, no model object.
            encoded[mid] = (
                f'{{"id":"{mid}","conversation_id":{_encode(cid)},"position":{position},'
                f'"text":{_encode(text)},"label":{"null" if label is None else _encode(label)},'
                f'"previous":{"null" if previous is None else _encode(previous)}}}'
            )
            stats.add(mid, label)
        payloads = [
            {"run": self.run, "items": [{"id": m[0], "text": m[3]} for m in new[i : i + size]]}
            for i in range(0, len(new), size)
        ]
        with self.connection.pipeline() as pipe:
            self.store.add_new_messages(pipe, self.run, encoded, stats, per_conversation)
            enqueue_classify_jobs(pipe, self.targets, self.run, payloads, self.options)
            pipe.execute()
        self.totals.enqueued += len(new)
        if self.targets:  # `summarise FILE` stores messages for no classifier: no micro-batch is enqueued
            self.totals.batches += batches
        return new

    def summarise(self, items: list[Conversation]) -> None:
        if not items:
            return
        jobs = summary_jobs(self.settings, items, self.settings.summary_backend)
        # The bound is on jobs, and a batched backend's job carries several conversations.
        self._wait_for_room([self.summary_queue], len(jobs), [self.summary_queue.count])
        with self.connection.pipeline() as pipe:
            self.summary_queue.enqueue_many(jobs, pipeline=pipe)
            pipe.execute()
        self.totals.summaries += len(items)

    def _wait_for_room(self, targets: list[Queue], adding: int, lengths: list[int]) -> None:
        """Back-pressure: never let a queue hold more than `max_queued` jobs; wait for workers to drain
        it, with one status line saying why."""
        started = None
        while True:
            full = [
                (q.name, n)
                for q, n in zip(targets, lengths, strict=True)
                if n and n + adding > self.max_queued
            ]
            if not full:
                break
            if started is None:
                started = time.monotonic()
                name, n = full[0]
                self.on_wait(
                    f"waiting: {name} holds {n} jobs, the bound is {self.max_queued} (--max-queued); "
                    "going on as workers drain it"
                )
            time.sleep(WAIT_POLL_S)
            lengths = [q.count for q in targets]
        if started is not None:
            self.totals.waited_s += time.monotonic() - started
