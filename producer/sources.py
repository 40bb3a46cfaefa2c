"""Where a stream's rows come from: stdin, or a file followed as it grows (`tail -F`), read by a thread.

The thread parses lines into raw rows and hands them over in lists through a bounded queue: reading
blocks when the producer falls behind (back-pressure reaches the input), and the producer's loop wakes
on a timeout while the input is quiet, so a trickle is flushed by time.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from producer.reader import Columns
from producer.rows import Format, RawRow, csv_rows, jsonl_rows, sniff_format

_CHUNK = 1 << 16
_ROWS_PER_HANDOFF = 4_096
_HANDOFFS_QUEUED = 8  # lists of rows waiting for the producer: bounds what the reader runs ahead
END = object()  # the input ended


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
                self._handoff()
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

    def _handoff(self) -> None:
        if self.pending:
            rows, self.pending = self.pending, []
            self._put(rows)

    def collect(self, rows: Iterator[RawRow]) -> None:
        # Not a local alias of self.pending: `_handoff` also runs from the line reader, between rows.
        for raw in rows:
            self.pending.append(raw)
            if len(self.pending) >= _ROWS_PER_HANDOFF:
                self._handoff()
                if self.stop.is_set():
                    return


def _lines(read: Callable[[], bytes], before_wait: Callable[[], None]) -> Iterator[str]:
    """Text lines (with their newline) from byte chunks; `before_wait` runs before each read that may
    block, so rows already parsed are handed over before the thread waits for more input."""
    tail = b""
    first = True
    while True:
        before_wait()
        chunk = read()
        if not chunk:
            break
        if first:
            chunk, first = chunk.removeprefix(b"\xef\xbb\xbf"), False
        head, sep, rest = (tail + chunk).rpartition(b"\n")
        if not sep:
            tail = rest
            continue
        tail = rest
        text = (head + b"\n").decode("utf-8", errors="surrogateescape")
        yield from text.splitlines(keepends=True)
    if tail:
        yield tail.decode("utf-8", errors="surrogateescape")


def _parse(lines: Iterator[str], fmt: Format | None, columns: Columns, source: str) -> Iterator[RawRow]:
    if fmt is None:
        first = next((line for line in lines if line.strip()), None)
        if first is None:
            return
        fmt = sniff_format(first)
        lines = _chain(first, lines)
    parser = jsonl_rows if fmt is Format.jsonl else csv_rows
    yield from parser(lines, columns, source)


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def stdin_feed(stream: BinaryIO, fmt: Format | None, columns: Columns) -> Feed:
    feed = Feed()
    try:
        # The descriptor, not the buffered reader: a thread blocked in BufferedReader.read1 holds its
        # lock, and the interpreter aborts at exit (after Ctrl-C / SIGTERM) waiting for it.
        fd = stream.fileno()
        read1 = lambda size: os.read(fd, size)  # noqa: E731
    except (AttributeError, OSError, ValueError):  # an in-memory stream (tests)
        read1 = getattr(stream, "read1", stream.read)

    def target() -> None:
        lines = _lines(lambda: read1(_CHUNK), feed._handoff)
        feed.collect(_parse(lines, fmt, columns, "stdin"))

    feed.start(target)
    return feed


def follow_feed(path: Path, fmt: Format | None, columns: Columns, poll_s: float = 0.25) -> Feed:
    """Read PATH from its start, then what is appended; reopen it when it is replaced (another inode)
    or truncated (smaller than what was read), as `tail -F` does, and parse the new file from its header."""
    feed = Feed()

    def target() -> None:
        while not feed.stop.is_set():
            while not path.exists():
                if feed.stop.wait(poll_s):
                    return
            if not _follow_file(feed, path, fmt, columns, poll_s):
                return

    feed.start(target)
    return feed


def _follow_file(feed: Feed, path: Path, fmt: Format | None, columns: Columns, poll_s: float) -> bool:
    """Parse the file until it is rotated (True: reopen it) or the feed is stopped (False)."""
    with path.open("rb") as handle:
        inode = os.fstat(handle.fileno()).st_ino
        rotated = False

        def read() -> bytes:
            nonlocal rotated
            while not feed.stop.is_set():
                chunk = handle.read(_CHUNK)
                if chunk:
                    return chunk
                if _replaced(path, inode, handle.tell()):
                    rotated = True
                    return b""
                feed._handoff()
                time.sleep(poll_s)
            return b""

        feed.collect(_parse(_lines(read, feed._handoff), fmt, columns, str(path)))
        return rotated


def _replaced(path: Path, inode: int, offset: int) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False  # mid-rotation: the new file is not there yet; keep the old one until it is
    return now.st_ino != inode or now.st_size < offset
