"""`chatlens produce -` (stdin), `--follow FILE`, and large files: streamed through `Ingest`."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import BinaryIO

from chatlens.backends.classifier import CLASSIFIERS
from chatlens.backends.summariser import SUMMARISERS
from chatlens.core.connection import connect_settings
from chatlens.core.console import err, out
from chatlens.core.errors import ChatlensError
from chatlens.core.keys import check_run_name
from chatlens.core.schemas import ProduceCounts
from chatlens.core.settings import Settings
from producer.enqueue import record_run
from producer.flush import BatchWriter
from producer.reader import Columns, _looks_utf16
from producer.rejects import RejectsFile
from producer.rows import Format, RawRow, csv_rows, format_of, jsonl_rows, parquet_rows
from producer.sampling import selection
from producer.sources import END, Feed, follow_feed, stdin_feed
from producer.stream import Ingest, StreamOptions, clean_labels

STDIN = Path("-")


@dataclass(frozen=True)
class Sample:
    sample_frac: float
    test_frac: float
    seed: int
    split: str  # all, train or test


_TICK_EVERY_ROWS = 4_096


def produce_stream(
    settings: Settings,
    file: Path,
    run: str,
    fmt: Format | None = None,
    follow: bool = False,
    columns: Columns = Columns(),
    out_dir: Path | None = None,
    redis_url: str | None = None,
    stdin: BinaryIO | None = None,
    stop: threading.Event | None = None,
    sample: Sample | None = None,
) -> ProduceCounts:
    """Read until the input ends (or, with `follow`, until `stop` is set / SIGINT / SIGTERM), flushing
    micro-batches as they fill or age; prints the usual one-line count."""
    try:
        check_run_name(run)
    except ValueError as exc:
        raise ChatlensError(str(exc)) from None
    for name in settings.classifiers:
        CLASSIFIERS.check(name)
    if settings.summarise:
        SUMMARISERS.check(settings.summary_backend)
    if follow and file == STDIN:
        raise ChatlensError("--follow reads a growing file; stdin is followed already: drop --follow")
    rows: Iterator[RawRow] | None = None
    if file != STDIN:
        fmt = fmt or format_of(file)
        rows = None if follow else _file_rows(file, fmt, columns)
    keep = None
    if sample is not None and rows is not None:
        # Two passes: the first keeps only each clean row's label, so the sample and split are those a
        # whole-file produce takes with the same seed; the second enqueues the rows chosen.
        labels = clean_labels(rows, settings.max_message_chars)
        keep = selection(labels, sample.sample_frac, sample.test_frac, sample.seed, sample.split)
        if labels and not keep.any():
            raise ChatlensError(
                f"--sample-frac {sample.sample_frac} / --split {sample.split} --test-frac {sample.test_frac} "
                f"select none of the {len(labels)} clean rows of {file}; "
                "raise the fraction (nothing was written)"
            )
        rows = _file_rows(file, fmt, columns)
    connection = connect_settings(settings, redis_url)

    writer = BatchWriter(
        connection,
        settings,
        run,
        settings.max_queued,
        on_wait=lambda line: err.print(line, highlight=False, soft_wrap=True),
    )
    options = StreamOptions(
        flush_s=settings.flush_ms / 1000,
        conversation_idle_s=settings.conversation_idle_s,
        summarise=settings.summarise,
        max_chars=settings.max_message_chars,
    )
    source = "stdin" if file == STDIN else str(file)
    rejects = RejectsFile((out_dir or Path.cwd()) / f"chatlens-rejects-{run}.csv")

    def _record() -> None:
        record_run(connection, settings.result_ttl_s, run, source, settings.classifiers)

    ingest = Ingest(
        writer,
        options,
        rejects,
        on_record=_record,
        keep=keep,
    )
    stop = stop or threading.Event()
    with _stop_on_signals(stop):
        if rows is not None:
            for count, raw in enumerate(rows, start=1):
                ingest.add(raw)
                if count % _TICK_EVERY_ROWS == 0:
                    ingest.tick()
                    if stop.is_set():
                        break
        else:
            err.print(
                f"reading {source}; Ctrl-C or SIGTERM flushes what was read and stops",
                highlight=False,
                soft_wrap=True,
            )
            if file == STDIN:
                feed = stdin_feed(stdin or sys.stdin.buffer, fmt, columns)
            else:
                feed = follow_feed(file, fmt, columns)
            _pump(feed, ingest, stop)
        counts = ingest.finish()
    out.print(counts.line(), highlight=False, soft_wrap=True)
    if rejects.count:
        err.print(f"rejected rows are listed in {rejects.path}", highlight=False, soft_wrap=True)
    return counts


def _pump(feed: Feed, ingest: Ingest, stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            item = feed.get(timeout=ingest.next_wake())
            if item is END:
                break
            if isinstance(item, list):
                ingest.add_all(item)
            ingest.tick()
        else:
            for rows in feed.drain():  # read before the signal: flushed, not lost
                ingest.add_all(rows)
    finally:
        feed.stop.set()


def _file_rows(path: Path, fmt: Format | None, columns: Columns) -> Iterator[RawRow]:
    """A file read a line (or a Parquet row group) at a time; the file-level checks run first, so a
    file that is not text fails before anything is written."""
    if not path.exists():
        raise ChatlensError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise ChatlensError(f"{path}: is a directory; pass a .csv, .jsonl or .parquet file")
    if fmt is Format.parquet:
        return parquet_rows(path, columns)
    with path.open("rb") as handle:
        head = handle.read(4096)
    if not head.strip():
        raise ChatlensError(
            f"{path}: the file is empty; give a file with a header row and at least one message"
        )
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or _looks_utf16(head):
        raise ChatlensError(
            f"{path}: not UTF-8 text (UTF-16 or binary); re-save it as UTF-8, e.g. iconv -f UTF-16 -t UTF-8"
        )
    return _text_rows(path, fmt, columns)


def _text_rows(path: Path, fmt: Format | None, columns: Columns) -> Iterator[RawRow]:
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        if fmt is None:
            first = handle.readline()
            handle.seek(0)
            from producer.rows import sniff_format

            fmt = sniff_format(first)
        parser = jsonl_rows if fmt is Format.jsonl else csv_rows
        yield from parser(handle, columns, str(path))


class _stop_on_signals:
    """SIGINT / SIGTERM set `stop`: the loop flushes what was read and prints its count, no traceback."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()

    def __enter__(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]  # what signal.signal returned
