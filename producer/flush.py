"""Writing a group of checked messages to Redis: skip those already stored, wait while a queue is at
its bound, then store the new ones and enqueue their micro-batches in one MULTI/EXEC pipeline.

A message is a plain tuple until here and is JSON-encoded once for the messages hash; its job argument
is the {id, text} pair that RQ's serializer encodes with the job.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, deque
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
from producer.outage import Outage
from producer.summaries import summary_jobs

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
WAIT_POLL_S = 0.5
# Redis with AOF everysec can lose up to about 2 s of acknowledged writes when it is killed: the groups
# written this long before the last write are kept, and written again (what is missing) after an outage.
RECENT_S = 5.0


@dataclass
class Written:
    enqueued: int = 0
    already_present: int = 0
    batches: int = 0
    summaries: int = 0  # conversations sent to be summarised (a batched backend packs several per job)
    waited_s: float = 0.0
    rewritten: int = 0  # messages written again after an outage, as the server had lost them


class BatchWriter:
    def __init__(
        self,
        connection: Redis,
        settings: Settings,
        run: str,
        max_queued: int,
        on_wait: Callable[[str], None] = lambda line: None,
        stop: threading.Event | None = None,
        url: str = "",
    ) -> None:
        self.connection, self.settings, self.run = connection, settings, run
        self.stop = stop or threading.Event()
        self.outage = Outage(
            connection, url, settings.redis_outage_s, settings.redis_retry_max_s, self.stop, on_wait
        )
        self.outage.after_outage = self._rewrite_recent
        self.recent: deque[tuple[float, list[Ready]]] = deque()
        self.sent_conversations: set[str] = set()  # summarised by this process: their jobs are pending
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
        """Store and enqueue the new messages of `group`; returns those that were new. A step lost to an
        outage is done again from its start: the messages it stored before are then found stored."""
        if not group:
            return []
        new = self.outage.call(lambda: self._store(group))
        self.totals.already_present += len(group) - len(new)
        self.totals.enqueued += len(new)
        if self.targets and new:  # `summarise FILE` stores messages for no classifier: no micro-batch
            self.totals.batches += -(-len(new) // self.settings.batch_size)
        if new:
            now = time.monotonic()
            self.recent.append((now, new))
            while self.recent and self.recent[0][0] < now - RECENT_S:
                self.recent.popleft()
        return new

    def _rewrite_recent(self) -> None:
        """After an outage: write again what the server lost of the last seconds' groups."""
        for _, group in list(self.recent):
            self.totals.rewritten += len(self._store(group))

    def _store(self, group: list[Ready]) -> list[Ready]:
        with self.connection.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.messages(self.run), [m[0] for m in group])
            for _, queue in self.targets:
                pipe.llen(queue.key)
            flags, *lengths = pipe.execute()
        new = [m for m, flag in zip(group, flags, strict=True) if flag is None]
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
        return new

    def _fill(self, pipe: Pipeline, new: list[Ready]) -> None:
        """Store `new` and enqueue its micro-batches in `pipe` (one MULTI/EXEC)."""
        size = self.settings.batch_size
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
        self.store.add_new_messages(pipe, self.run, encoded, stats, per_conversation)
        enqueue_classify_jobs(pipe, self.targets, self.run, payloads, self.options)
        # Always one write, so that the WAIT after it covers everything before it (a re-send may find
        # nothing missing and still has to learn whether the replicas hold it).
        pipe.expire(keys.messages(self.run), self.settings.result_ttl_s)

    def _missing(self, group: list[Ready]) -> list[Ready]:
        flags = self.connection.hmget(keys.messages(self.run), [m[0] for m in group])
        return [m for m, flag in zip(group, flags, strict=True) if flag is None]

    def resend(self, classifier: str, group: list[tuple[str, str]]) -> None:
        """Classify jobs again for stored messages (id, text) that lost theirs (see producer.completion)."""
        targets = [(c, q) for c, q in self.targets if c == classifier]
        size = self.settings.batch_size
        payloads = [
            {"run": self.run, "items": [{"id": mid, "text": text} for mid, text in group[i : i + size]]}
            for i in range(0, len(group), size)
        ]

        def enqueue() -> None:
            self._wait_for_room([q for _, q in targets], len(payloads), [q.count for _, q in targets])
            self.ack.write(
                lambda pipe: enqueue_classify_jobs(pipe, targets, self.run, payloads, self.options),
                f"run {self.run}: {len(group)} messages re-sent to {classifier}",
            )

        self.outage.call(enqueue)
        self.totals.batches += len(payloads)

    def summarise(self, items: list[Conversation]) -> None:
        if not items:
            return
        jobs = summary_jobs(self.settings, items, self.settings.summary_backend)

        def enqueue() -> None:
            # The bound is on jobs, and a batched backend's job carries several conversations.
            self._wait_for_room([self.summary_queue], len(jobs), [self.summary_queue.count])
            # Acknowledged like a batch: a re-send may enqueue a summary twice, which writes it twice,
            # the same.
            self.ack.write(
                lambda pipe: self.summary_queue.enqueue_many(jobs, pipeline=pipe),
                f"run {self.run}: summary jobs for {len(items)} conversations",
            )

        # An EXEC lost with its reply may have enqueued them: a conversation summarised twice is
        # overwritten by the same summary, and it is at most one group of jobs.
        self.outage.call(enqueue)
        self.totals.summaries += len(items)
        self.sent_conversations.update(c.conversation_id for c in items)

    def _wait_for_room(self, targets: list[Queue], adding: int, lengths: list[int]) -> None:
        """Back-pressure: never let a queue hold more than `max_queued` jobs; wait for workers to drain
        it, with one status line saying why. A stop signal ends the wait: what was read is written past
        the bound (at most what the producer has read ahead), so a stop loses nothing."""
        started = None
        while not self.stop.is_set():
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
            self.stop.wait(WAIT_POLL_S)
            lengths = [q.count for q in targets]
        if started is not None:
            self.totals.waited_s += time.monotonic() - started
