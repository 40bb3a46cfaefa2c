"""Where rows come from: a file, stdin, or a file followed as it grows (`tail -F`). Every input goes the
same way: its head is read and checked (`input_checks`), then its format's one parser (`rows`) reads
the rest. A file is read by the caller's thread; stdin and a followed file by a `Feed` thread.

The feed thread hands rows over in lists through a bounded queue: reading blocks when the producer falls
behind (back-pressure reaches the input), and the producer's loop wakes on a timeout while the input is
quiet, so a trickle is flushed by time.
"""

from __future__ import annotations

import io
import os
import queue
import select
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from chatlens.core.errors import ChatlensError
from producer.input_checks import HEAD_BYTES, Head, check_head, open_parquet, read_head
from producer.rows import Columns, Format, RawRow, csv_rows, jsonl_rows, parquet_rows

_ROWS_PER_HANDOFF = 4_096
_HANDOFFS_QUEUED = 8  # lists of rows waiting for the producer: bounds what the reader runs ahead
_WAIT_S = 0.25  # how often a blocked read looks at the stop flag
END = object()  # the input ended


class Input(Protocol):
    name: str  # the input as messages name it: a path, or "stdin"

    def read(self, size: int) -> bytes:
        """Up to `size` bytes; b"" at the end of the input (or once stopped)."""

    def ready(self) -> bool:
        """Whether `read` would return at once."""


class FileInput:
    def __init__(self, path: Path) -> None:
        if not path.exists():
            raise ChatlensError(f"{path}: no such file; check the path")
        if path.is_dir():
            raise ChatlensError(f"{path}: is a directory; pass a .csv, .jsonl or .parquet file")
        try:
            self.handle = path.open("rb")
        except OSError as exc:
            raise ChatlensError(
                f"{path}: cannot be read ({exc.strerror or exc}); check its permissions"
            ) from None
        self.name, self.path = str(path), path
        self.read = self.handle.read

    def ready(self) -> bool:
        return True


class StdinInput:
    def __init__(self, stream: BinaryIO, stop: threading.Event) -> None:
        self.name, self.stop = "stdin", stop
        self.on_wait: Callable[[], None] = lambda: None  # runs before a read that would wait
        try:
            # The descriptor, not the buffered reader: a thread blocked in BufferedReader.read1 holds its
            # lock, and the interpreter aborts at exit (after Ctrl-C / SIGTERM) waiting for it.
            self.fd: int | None = stream.fileno()
        except (AttributeError, OSError, ValueError):  # an in-memory stream (tests)
            self.fd = None
            self._read = getattr(stream, "read1", stream.read)

    def ready(self) -> bool:
        return self.fd is None or bool(select.select([self.fd], [], [], 0)[0])

    def read(self, size: int) -> bytes:
        if self.fd is None:
            return self._read(size)
        if not self.ready():
            self.on_wait()
            while not select.select([self.fd], [], [], _WAIT_S)[0]:
                if self.stop.is_set():
                    return b""
        return os.read(self.fd, size)


class FollowInput:
    """A file read from its start, then what is appended; it ends when the file is replaced (another
    inode) or truncated (smaller than what was read), so the caller reopens it, as `tail -F` does."""

    def __init__(self, path: Path, stop: threading.Event, poll_s: float) -> None:
        self.name, self.path, self.stop, self.poll_s = str(path), path, stop, poll_s
        self.on_wait: Callable[[], None] = lambda: None
        self.handle = path.open("rb")
        self.inode = os.fstat(self.handle.fileno()).st_ino
        self.rotated = False

    def ready(self) -> bool:
        return os.fstat(self.handle.fileno()).st_size > self.handle.tell()

    def read(self, size: int) -> bytes:
        while not self.stop.is_set():
            chunk = self.handle.read(size)
            if chunk:
                return chunk
            if _replaced(self.path, self.inode, self.handle.tell()):
                self.rotated = True
                return b""
            self.on_wait()
            self.stop.wait(self.poll_s)
        return b""


def _replaced(path: Path, inode: int, offset: int) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False  # mid-rotation: the new file is not there yet; keep the old one until it is
    return now.st_ino != inode or now.st_size < offset


def open_rows(
    source: Input, fmt: Format | None, columns: Columns, stop: threading.Event | None = None
) -> Iterator[RawRow]:
    """Read and check the head now (a bad input fails here, before anything is written); the rows are
    parsed as the iterator is read."""
    head = read_head(source.read, source.ready)
    if stop is not None and stop.is_set():  # stopped, not ended: nothing to say about the input
        if not head.data:
            return iter(())
        head = Head(head.data, ended=False)
    fmt = check_head(head, fmt, columns, source.name)
    if fmt is Format.parquet:
        return _parquet(source, head, columns)
    # "\n" alone ends a JSON line (a JSON string holds no raw line break); CSV is read as csv wants it.
    newline = "\n" if fmt is Format.jsonl else ""
    if isinstance(source, FileInput):
        source.handle.seek(0)
        text = _text(source.handle, newline)
    else:
        text = _text(_Replay(head.data, source), newline)
    return jsonl_rows(text, columns) if fmt is Format.jsonl else csv_rows(text, columns, source.name)


def _text(raw: io.BufferedReader | _Replay, newline: str) -> io.TextIOWrapper:
    # Undecodable bytes are kept (as surrogates), so that a bad byte rejects its row, not the input.
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline=newline)


class _Replay(io.BufferedIOBase):
    """The head already read, then the rest of the input: what a text reader reads a stream through."""

    def __init__(self, head: bytes, source: Input) -> None:
        self.head, self.source, self.name = head, source, source.name

    def readable(self) -> bool:
        return True

    def read1(self, size: int | None = -1) -> bytes:
        if self.head:
            data, self.head = self.head, b""
            return data
        return self.source.read(size if size and size > 0 else HEAD_BYTES)

    def read(self, size: int | None = -1) -> bytes:
        return self.read1(size)


def _parquet(source: Input, head: Head, columns: Columns) -> Iterator[RawRow]:
    """Parquet's index is at the end of the file: stdin is spooled to a temp file first."""
    if isinstance(source, FollowInput):
        raise ChatlensError(
            f"{source.name}: a Parquet file cannot be followed (its index is written last); drop --follow"
        )
    if isinstance(source, FileInput):
        return parquet_rows(source.path, columns, open_parquet(source.path, columns, source.name))
    with tempfile.NamedTemporaryFile(suffix=".parquet", delete=False) as spool:
        spool.write(head.data)
        while chunk := source.read(1 << 20):
            spool.write(chunk)
    path = Path(spool.name)
    try:
        label = open_parquet(path, columns, source.name)
    except BaseException:
        path.unlink()
        raise
    return _removed_after(parquet_rows(path, columns, label), path)


def _removed_after(rows: Iterator[RawRow], path: Path) -> Iterator[RawRow]:
    try:
        yield from rows
    finally:
        path.unlink(missing_ok=True)


class Feed:
    """Rows read by a background thread; `get` returns a list of rows, END, or None on a quiet timeout."""

    def __init__(self) -> None:
        self.queue: queue.Queue[object] = queue.Queue(maxsize=_HANDOFFS_QUEUED)
        self.stop = threading.Event()
        self.pending: list[RawRow] = []

    def start(self, target: Callable[[], None]) -> None:
        def run() -> None:
            try:
                target()
                self.handoff()
                self._put(END)
            except BaseException as exc:  # handed to the producer's thread, which reports it
                self._put(exc)

        threading.Thread(target=run, name="chatlens-feed", daemon=True).start()

    def get(self, timeout: float) -> object:
        try:
            item = self.queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(item, BaseException):
            raise item
        return item

    def drain(self) -> list[list[RawRow]]:
        """What the thread has read and not yet handed over: flushed on Ctrl-C / SIGTERM."""
        lists: list[list[RawRow]] = []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return lists
            if isinstance(item, list):
                lists.append(item)

    def _put(self, item: object) -> None:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def handoff(self) -> None:
        if self.pending:
            rows, self.pending = self.pending, []
            self._put(rows)

    def collect(self, rows: Iterator[RawRow]) -> None:
        # Not a local alias of self.pending: `handoff` also runs from the input, before a read that waits.
        for raw in rows:
            self.pending.append(raw)
            if len(self.pending) >= _ROWS_PER_HANDOFF:
                self.handoff()
                if self.stop.is_set():
                    return


def stdin_feed(rows: Iterator[RawRow], source: StdinInput, feed: Feed) -> None:
    """The rest of stdin, its head already checked by `open_rows`."""
    source.on_wait = feed.handoff
    feed.start(lambda: feed.collect(rows))


def follow_feed(path: Path, fmt: Format | None, columns: Columns, feed: Feed, poll_s: float = 0.25) -> None:
    """Read PATH and what is appended to it; reopen it when it is rotated and parse the new file from
    its header (its head checked like any input's)."""

    def target() -> None:
        while not feed.stop.is_set():
            while not path.exists():
                if feed.stop.wait(poll_s):
                    return
            source = FollowInput(path, feed.stop, poll_s)
            source.on_wait = feed.handoff
            with source.handle:
                feed.collect(open_rows(source, fmt, columns, feed.stop))
            if not source.rotated:
                return

    feed.start(target)
