"""The one way messages go into Redis: an input (a file, stdin, or a followed file) -> its checked head
and its format's parser (`sources`) -> `Ingest` -> `BatchWriter`. A file is a finite stream, read in
bounded memory; with a sample or split it is read twice (the first pass keeps only each clean row's
label, the second enqueues the rows chosen)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import BinaryIO

from rich.markup import escape

from chatlens.backends.classifier import CLASSIFIERS
from chatlens.backends.summariser import SUMMARISERS
from chatlens.core import queues
from chatlens.core.connection import connect_settings
from chatlens.core.console import err, out, progress_bar
from chatlens.core.errors import ChatlensError, ServiceUnavailable
from chatlens.core.keys import check_run_name
from chatlens.core.schemas import ProduceCounts
from chatlens.core.settings import Settings
from producer.csv_out import RejectsFile, SplitFiles
from producer.enqueue import idle_queues_warning, record_run
from producer.flush import BatchWriter
from producer.input_checks import no_rows
from producer.outage import REDIS_LOST, RedisLost, stopped_line
from producer.rows import Columns, Format, RawRow, format_of
from producer.sampling import Parts, Sample, Selection, selection, strata_of
from producer.sources import END, Feed, FileInput, StdinInput, follow_feed, open_rows, stdin_feed
from producer.stream import Ingest, StreamOptions

STDIN = Path("-")
_TICK_EVERY_ROWS = 4_096


class Stopped(ChatlensError):
    """Ctrl-C / SIGTERM before anything was written."""

    exit_code = 130


def produce_input(
    settings: Settings,
    file: Path,
    run: str,
    fmt: Format | None = None,
    follow: bool = False,
    columns: Columns = Columns(),
    out_dir: Path | None = None,
    redis_url: str | None = None,
    sample: Sample | None = None,
    stdin: BinaryIO | None = None,
    stop: threading.Event | None = None,
    warn_idle_queues: bool = True,
) -> ProduceCounts:
    """Read FILE (STDIN: standard input) until it ends, or with `follow` until `stop` is set / SIGINT /
    SIGTERM, flushing micro-batches as they fill or age; prints the one-line count. A bad input or
    argument raises `ChatlensError` before anything is written."""
    sample = _check_arguments(settings, file, run, follow, sample)
    fmt = fmt or (None if file == STDIN else format_of(file))
    source = "stdin" if file == STDIN else str(file)
    stop = stop or threading.Event()
    with _stop_on_signals(stop):
        read, parts = _open_input(file, fmt, columns, follow, stdin, stop, settings, sample)
        # Connected once the input is known good: a bad input gets its one line whether Redis is up or not.
        connection = connect_settings(settings, redis_url)
        url = redis_url or settings.redis_url
        writer = BatchWriter(connection, settings, run, settings.max_queued, _say, stop, url)
        rejects = RejectsFile((out_dir or Path.cwd()) / f"chatlens-rejects-{run}.csv")
        # A split's two parts are written out with --out-dir (a sample without a split is not).
        split = (
            SplitFiles(out_dir, columns)
            if out_dir is not None and sample is not None and sample.split != "all"
            else None
        )
        options = StreamOptions(
            flush_s=settings.flush_ms / 1000,
            conversation_idle_s=settings.conversation_idle_s,
            summarise=settings.summarise,
            max_chars=settings.max_message_chars,
            context_chars=settings.context_chars,
            context_conversations=settings.context_conversations,
        )
        ingest = Ingest(
            writer,
            options,
            rejects,
            on_record=lambda: record_run(
                connection, settings.result_ttl_s, run, source, settings.classifiers, settings.summarise
            ),
            selection=None if parts is None else Selection(parts, split.add if split else None),
        )
        try:
            try:
                read(ingest)
                if ingest.rules.read == 0 and not stop.is_set():
                    raise no_rows(source)
                counts = ingest.finish()
            except RedisLost as lost:
                line = stopped_line(lost, ingest.counts(), source, run, url, file == STDIN)
                raise ServiceUnavailable(line) from None
        except BaseException:
            rejects.discard()
            if split is not None:
                split.discard()
            raise
        rejects.close()
        if split is not None:
            split.close()
    out.print(counts.line(), highlight=False, soft_wrap=True)
    if counts.already_present or writer.outage.outages or ingest.resent.anything():
        out.print(ingest.resent.line(), highlight=False, soft_wrap=True)
    if writer.outage.outages:
        _say(
            f"Redis was unreachable {writer.outage.outages} time(s), {writer.outage.outage_s:.1f} s in all; "
            f"{writer.totals.rewritten} messages it lost were written again"
        )
    if rejects.count:
        _say(f"rejected rows are listed in {escape(str(rejects.path))}")
    if counts.batches and warn_idle_queues:
        try:
            warning = idle_queues_warning(connection, queues.default_queues(settings))
        except REDIS_LOST:  # everything is written: advice is not worth waiting for Redis
            warning = None
        if warning:
            _say(f"[yellow]warning:[/] {escape(warning)}")
    return counts


def _say(line: str) -> None:
    err.print(line, highlight=False, soft_wrap=True)


def _open_input(
    file: Path,
    fmt: Format | None,
    columns: Columns,
    follow: bool,
    stdin: BinaryIO | None,
    stop: threading.Event,
    settings: Settings,
    sample: Sample | None,
) -> tuple[Callable[[Ingest], None], Parts | None]:
    """How the input's rows reach `Ingest` (its head read and checked now, but for a followed file,
    which may not exist yet), and with a sample or split each clean row's part (a first pass)."""
    if follow:

        def follow_rows(ingest: Ingest) -> None:
            feed = Feed()
            follow_feed(file, fmt, columns, feed)
            _pump(feed, ingest, stop, str(file))

        return follow_rows, None
    if file == STDIN:
        source = StdinInput(stdin or sys.stdin.buffer, stop)
        rows = open_rows(source, fmt, columns, stop)

        def stdin_rows(ingest: Ingest) -> None:
            feed = Feed()
            stdin_feed(rows, source, feed)
            _pump(feed, ingest, stop, "stdin")

        return stdin_rows, None
    rows = open_rows(FileInput(file), fmt, columns)
    parts = None
    if sample is not None:
        parts = _first_pass(rows, settings, sample, str(file), stop)
        rows = open_rows(FileInput(file), fmt, columns)
    return lambda ingest: _read_file(rows, ingest, stop, str(file)), parts


def _check_arguments(
    settings: Settings, file: Path, run: str, follow: bool, sample: Sample | None
) -> Sample | None:
    """The sample or split to take, None for every row."""
    try:
        check_run_name(run)
    except ValueError as exc:
        raise ChatlensError(str(exc)) from None
    # Unknown backend names stop here, before a job lands on a queue no worker will ever serve.
    for name in settings.classifiers:
        CLASSIFIERS.check(name)
    if settings.summarise:
        SUMMARISERS.check(settings.summary_backend)
    if follow and file == STDIN:
        raise ChatlensError("--follow reads a growing file; stdin is followed already: drop --follow")
    if sample is None:
        return None
    if not 0.0 < sample.sample_frac <= 1.0:  # also catches nan, which fails every comparison
        raise ChatlensError(
            f"--sample-frac must be 0 < frac <= 1 (got {sample.sample_frac}); 1 keeps every row"
        )
    if not 0.0 < sample.test_frac < 1.0:
        raise ChatlensError(f"--test-frac must be 0 < frac < 1 (got {sample.test_frac}); 0.3 holds out 30%")
    if sample.sample_frac == 1.0 and sample.split == "all":
        return None
    if file == STDIN or follow:
        raise ChatlensError("--sample-frac/--split need the whole input: give a file, not a stream")
    return sample


def _first_pass(
    rows: Iterator[RawRow], settings: Settings, sample: Sample, source: str, stop: threading.Event
) -> Parts:
    """Each clean row's part; nothing is written yet, so a stop here ends the command at once."""
    kept = strata_of(_until(rows, stop), settings.max_message_chars)
    if stop.is_set():
        raise Stopped(f"stopped while reading {source} for the sample or split; nothing was written")
    parts = selection(kept, sample)
    if len(kept) and not parts.chosen:
        raise ChatlensError(
            f"--sample-frac {sample.sample_frac} / --split {sample.split} --test-frac {sample.test_frac} "
            f"select none of the {len(kept)} clean rows of {source}; "
            "raise the fraction (nothing was written)"
        )
    return parts


def _until(rows: Iterator[RawRow], stop: threading.Event) -> Iterator[RawRow]:
    for count, raw in enumerate(rows, start=1):
        yield raw
        if count % _TICK_EVERY_ROWS == 0 and stop.is_set():
            return


def _read_file(rows: Iterator[RawRow], ingest: Ingest, stop: threading.Event, source: str) -> None:
    with _rows_read(source) as show:
        for count, raw in enumerate(rows, start=1):
            ingest.add(raw)
            if count % _TICK_EVERY_ROWS == 0:
                ingest.tick()
                show(count)
                if stop.is_set():
                    return


@contextmanager
def _rows_read(source: str) -> Iterator[Callable[[int], None]]:
    """On a terminal, the rows read so far: a large file takes minutes."""
    if not err.is_terminal:
        yield lambda count: None
        return
    with progress_bar() as bar:
        task = bar.add_task(f"read {source} (rows)", total=None)
        yield lambda count: bar.update(task, completed=count)


def _pump(feed: Feed, ingest: Ingest, stop: threading.Event, source: str) -> None:
    _say(f"reading {escape(source)}; Ctrl-C or SIGTERM flushes what was read and stops")
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
