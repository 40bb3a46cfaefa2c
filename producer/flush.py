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
from redis.client import Pipeline
from rq import Queue

from chatlens.core import keys, queues
from chatlens.core.message_stats import MessageStats
from chatlens.core.replication import ReplicaAck
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
        self.ack = ReplicaAck.from_settings(connection, settings)
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
        sends = 0

        def fill(pipe: Pipeline) -> None:
            # A re-send (the replicas did not acknowledge the last one) writes only what the primary
            # lacks: after a failover, what the old primary never passed on.
            nonlocal sends
            sends += 1
            self._fill(pipe, new if sends == 1 else self._missing(new))

        # Counted as enqueued only once the replicas hold it (chatlens/core/replication.py).
        self.ack.write(fill, f"run {self.run}: a batch of {len(new)} messages")
        self.totals.enqueued += len(new)
        if self.targets:  # `summarise FILE` stores messages for no classifier: no micro-batch is enqueued
            self.totals.batches += batches
        return new

    def _fill(self, pipe: Pipeline, new: list[Ready]) -> None:
        """Store `new` and enqueue its micro-batches in `pipe` (one MULTI/EXEC)."""
        size = self.settings.batch_size
        stats = MessageStats()
        per_conversation: Counter[str] = Counter()
        encoded: dict[str, str] = {}
        for mid, cid, position, text, label in new:
            per_conversation[cid] += 1
            # The Message record's JSON, written directly: one encoder call per string, no model object.
            encoded[mid] = (
                f'{{"id":"{mid}","conversation_id":{_encode(cid)},"position":{position},'
                f'"text":{_encode(text)},"label":{"null" if label is None else _encode(label)}}}'
            )
            stats.add(mid, label)
        payloads = [
            {"run": self.run, "items": [{"id": m[0], "text": m[3]} for m in new[i : i + size]]}
            for i in range(0, len(new), size)
        ]
        self.store.add_new_messages(pipe, self.run, encoded, stats, per_conversation)
        enqueue_classify_jobs(pipe, self.targets, self.run, payloads, self.options)
        # Always one write, so that the WAIT after it covers everything before it (a re-send may find
        # nothing missing and still has to learn whether the replicas hold it).
        pipe.expire(keys.messages(self.run), self.settings.result_ttl_s)

    def _missing(self, group: list[Ready]) -> list[Ready]:
        flags = self.connection.hmget(keys.messages(self.run), [m[0] for m in group])
        return [m for m, flag in zip(group, flags, strict=True) if flag is None]

    def summarise(self, items: list[Conversation]) -> None:
        if not items:
            return
        jobs = summary_jobs(self.settings, items, self.settings.summary_backend)
        # The bound is on jobs, and a batched backend's job carries several conversations.
        self._wait_for_room([self.summary_queue], len(jobs), [self.summary_queue.count])
        # Acknowledged like a batch: a re-send may enqueue a summary twice, which writes it twice, the same.
        self.ack.write(
            lambda pipe: self.summary_queue.enqueue_many(jobs, pipeline=pipe),
            f"run {self.run}: summary jobs for {len(items)} conversations",
        )
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
