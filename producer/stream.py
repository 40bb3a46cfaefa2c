"""`Ingest`: rows in, one at a time -> the cleaning rules (`cleaning.RowRules`) -> the sample or split, if
any -> micro-batches flushed by size or by time -> Redis; conversations summarised when they go quiet,
and again when they grow. A file is a finite stream: the same object ingests a file, stdin and a
followed file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

from rq import Queue

from chatlens.core.schemas import Conversation, ProduceCounts
from producer.cleaning import Ready, RowRules
from producer.completion import Resent, unclassified, unsummarised
from producer.context import DEFAULT_CHARS, DEFAULT_CONVERSATIONS, PreviousTurns
from producer.csv_out import RejectsFile
from producer.flush import BatchWriter
from producer.rows import RawRow
from producer.sampling import Selection
from producer.summaries import JOBS_PER_ROUND_TRIP, conversations_per_job

# Micro-batches written per Redis round trip when input arrives faster than the flush interval.
BATCHES_PER_FLUSH = 32
_ID_BYTES = 10  # a message id is 20 hex characters


@dataclass(frozen=True)
class StreamOptions:
    flush_s: float
    conversation_idle_s: float
    summarise: bool
    max_chars: int
    record_every_s: float = 5.0
    context_chars: int = DEFAULT_CHARS
    context_conversations: int = DEFAULT_CONVERSATIONS


class Ingest:
    def __init__(
        self,
        writer: BatchWriter,
        options: StreamOptions,
        rejects: RejectsFile,
        on_record: Callable[[], object] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        selection: Selection | None = None,
    ) -> None:
        self.writer, self.options, self.rejects, self.on_record, self.clock = (
            writer,
            options,
            rejects,
            on_record,
            clock,
        )
        self.run = writer.run
        self.group_size = writer.settings.batch_size * BATCHES_PER_FLUSH
        context = PreviousTurns(options.context_chars, options.context_conversations)
        self.rules = RowRules(options.max_chars, rejects.add, context)
        self.selection = selection  # --sample-frac / --split: which clean rows are enqueued
        self.not_selected = 0
        self.pending: list[Ready] = []
        now = clock()
        self.oldest_pending = now
        self.last_record = now
        self.recorded = False
        # Conversations: turns read since their last summary (position, id, text), when they were
        # last seen, whether they got a new message, and the ids of turns already summarised (packed).
        self.open_turns: dict[str, list[tuple[int, str, str]]] = {}
        self.last_seen: dict[str, float] = {}
        self.grew: set[str] = set()
        self.summarised_ids: dict[str, bytes] = {}
        self.resent = Resent()

    def add_all(self, rows: Iterable[RawRow]) -> None:
        for raw in rows:
            self.add(raw)

    def add(self, raw: RawRow) -> None:
        ready = self.rules.accept(raw)
        if ready is None:
            return
        if self.selection is not None and not self.selection.take(ready):
            self.not_selected += 1
            return
        mid, cid, position, message = ready[:4]
        if not self.pending:
            self.oldest_pending = self.clock()
        self.pending.append(ready)
        if self.options.summarise:
            self.open_turns.setdefault(cid, []).append((position, mid, message))
            self.last_seen.pop(cid, None)
            self.last_seen[cid] = 0.0  # stamped at the flush that stores it
        if len(self.pending) >= self.group_size:
            self.flush()

    def tick(self) -> None:
        """Called while the input is quiet too: flush by time, summarise quiet conversations."""
        now = self.clock()
        if self.pending and now - self.oldest_pending >= self.options.flush_s:
            self.flush()
        if self.options.summarise and self.last_seen:
            self._summarise_quiet(now - self.options.conversation_idle_s)
        if self.recorded and now - self.last_record >= self.options.record_every_s:
            self._record(now)

    def next_wake(self) -> float:
        """Seconds until `tick` has something to do at the latest."""
        due = (
            self.options.flush_s
            if not self.pending
            else self.oldest_pending + self.options.flush_s - self.clock()
        )
        return max(0.01, min(due, self.options.flush_s, 0.25))

    def flush(self) -> None:
        group, self.pending = self.pending, []
        if not self.recorded and group:
            # Registered before its first message is written: a run cut short is visible to `status`,
            # `eval` and `drop`.
            self._record(self.clock())
        new = self.writer.write(group)
        if self.options.summarise:
            now = self.clock()
            for m in group:
                if m[1] in self.last_seen:
                    self.last_seen[m[1]] = now
            self.grew.update(m[1] for m in new)

    def finish(self) -> ProduceCounts:
        """End of input (or a stop signal): flush what was read, summarise every conversation that grew,
        re-send what a re-run finds no job will do (`producer.completion`), and describe the run again."""
        self.flush()
        if self.options.summarise:
            self._summarise_quiet(float("inf"))
        if self.rules.read:  # a stream stopped before its first row registers no run
            self.complete()
            self._record(self.clock())
        return self.counts()

    def complete(self) -> None:
        writer, store = self.writer, self.writer.store
        if writer.totals.already_present or writer.outage.outages:  # a re-run, or an outage ridden out
            for model, queue in writer.targets:
                sent, failed = writer.outage.call(partial(self._unclassified, model, queue))
                self.resent.messages[model] = sent
                self.resent.in_failed_jobs += failed
        if self.options.summarise:
            items, failed = writer.outage.call(
                lambda: unsummarised(
                    store, writer.summary_queue, self.run, writer.sent_conversations, self._known_ids
                )
            )
            backend = writer.settings.summary_backend
            step = JOBS_PER_ROUND_TRIP * conversations_per_job(writer.settings, backend)
            for start in range(0, len(items), step):  # each round trip within the queue's bound
                writer.summarise(items[start : start + step])
            self.resent.conversations += len(items)
            self.resent.in_failed_jobs += failed

    def _unclassified(self, model: str, queue: Queue) -> tuple[int, int]:
        return unclassified(self.writer.store, queue, self.run, model, partial(self.writer.resend, model))

    def _known_ids(self, cid: str) -> list[str] | None:
        packed = self.summarised_ids.get(cid)
        if packed is None:
            return None
        return [packed[i : i + _ID_BYTES].hex() for i in range(0, len(packed), _ID_BYTES)]

    def counts(self) -> ProduceCounts:
        totals = self.writer.totals
        return ProduceCounts(
            read=self.rules.read,
            dropped_missing=self.rules.dropped_missing,
            dropped_duplicate=self.rules.dropped_duplicate,
            rejected=self.rejects.count,
            not_selected=self.not_selected,
            enqueued=totals.enqueued,
            already_present=totals.already_present,
            batches=totals.batches,
            conversations=totals.summaries,
        )

    def _record(self, now: float) -> None:
        self.last_record = now
        self.recorded = True
        self.writer.outage.call(self.on_record)

    def _summarise_quiet(self, before: float) -> None:
        quiet: list[str] = []
        for cid, seen in self.last_seen.items():  # oldest first: re-inserted on every new turn
            if seen == 0.0 or seen > before:
                if seen != 0.0:
                    break
                continue  # read but not flushed yet
            quiet.append(cid)
        if not quiet:
            return
        earlier = self._earlier_turns([c for c in quiet if c in self.grew and c in self.summarised_ids])
        items: list[Conversation] = []
        for cid in quiet:
            del self.last_seen[cid]
            turns = self.open_turns.pop(cid, [])
            packed = self.summarised_ids.get(cid, b"") + b"".join(bytes.fromhex(mid) for _, mid, _ in turns)
            self.summarised_ids[cid] = packed
            if cid not in self.grew:
                continue
            self.grew.discard(cid)
            texts = sorted({p: t for p, t in [*earlier.get(cid, []), *((p, t) for p, _, t in turns)]}.items())
            items.append(Conversation(run=self.run, conversation_id=cid, turns=[t for _, t in texts]))
        self.writer.summarise(items)

    def _earlier_turns(self, cids: list[str]) -> dict[str, list[tuple[int, str]]]:
        """Turns of conversations summarised before, read back from the messages hash by id."""
        wanted = {cid: self._known_ids(cid) or [] for cid in cids}
        every = [mid for known in wanted.values() for mid in known]
        found = self.writer.outage.call(lambda: self.writer.store.messages_by_id(self.run, every))
        return {
            cid: [(found[m].position, found[m].text) for m in ids if m in found]
            for cid, ids in wanted.items()
        }
