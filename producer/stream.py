"""`Ingest`: rows in, one at a time -> the cleaning rules (`cleaning.RowRules`) -> the sample or split, if
any -> micro-batches flushed by size or by time -> Redis; conversations summarised when they go quiet,
and again when they grow. A file is a finite stream: the same object ingests a file, stdin and a
followed file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from chatlens.core.schemas import Conversation, ProduceCounts
from producer.cleaning import Ready, RowRules
from producer.context import DEFAULT_CHARS, DEFAULT_CONVERSATIONS, PreviousTurns
from producer.csv_out import RejectsFile
from producer.flush import BatchWriter
from producer.rows import RawRow
from producer.sampling import Selection

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
        new = self.writer.write(group)
        if self.options.summarise:
            now = self.clock()
            for m in group:
                if m[1] in self.last_seen:
                    self.last_seen[m[1]] = now
            self.grew.update(m[1] for m in new)
        if not self.recorded and new:
            self._record(self.clock())  # the run exists for `status` and `eval` from its first batch

    def finish(self) -> ProduceCounts:
        """End of input (or a stop signal): flush what was read, summarise every conversation that grew."""
        self.flush()
        if self.options.summarise:
            self._summarise_quiet(float("inf"))
        if self.rules.read:  # a stream stopped before its first row registers no run
            self._record(self.clock())
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
        self.on_record()

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
        wanted = {
            cid: [
                self.summarised_ids[cid][i : i + _ID_BYTES].hex()
                for i in range(0, len(self.summarised_ids[cid]), _ID_BYTES)
            ]
            for cid in cids
        }
        found = self.writer.store.messages_by_id(self.run, [mid for ids in wanted.values() for mid in ids])
        return {
            cid: [(found[m].position, found[m].text) for m in ids if m in found]
            for cid, ids in wanted.items()
        }
