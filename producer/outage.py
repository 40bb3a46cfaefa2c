"""Riding out a Redis outage: every Redis step of the producer runs through `Outage.call`, which retries
a lost connection with backoff until `redis_outage_s` has passed since the first failure (or a stop
signal arrives), then raises `RedisLost`. A step is re-run from its start, so each step must be safe to
repeat: a write first reads which messages are stored (ids are content hashes), so nothing is stored or
enqueued twice.

`stopped_line` is the one line a producer stops with when the outage outlasts the deadline: what was
enqueued, what was not, and the command that resumes the run (the password masked).
"""

from __future__ import annotations

import shlex
import sys
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from chatlens.core.redact import redact_text, redact_url
from chatlens.core.schemas import ProduceCounts

T = TypeVar("T")
# What a dead or restarting server raises: refused or reset connections, timeouts, and LOADING while it
# replays its AOF (BusyLoadingError is a ConnectionError).
REDIS_LOST: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)
FIRST_WAIT_S = 0.5


class RedisLost(Exception):
    """The outage outlasted `redis_outage_s`, or a stop signal came while waiting for Redis."""

    def __init__(self, detail: str, waited_s: float, stopped: bool) -> None:
        super().__init__(detail)
        self.detail, self.waited_s, self.stopped = detail, waited_s, stopped


class Outage:
    def __init__(
        self,
        connection: redis.Redis,
        url: str,
        deadline_s: float,
        max_wait_s: float,
        stop: threading.Event,
        on_line: Callable[[str], None] = lambda line: None,
    ) -> None:
        # redis-py's own retries (3, with backoff up to 10 s each) would hide the outage from the deadline
        # and keep a stop signal waiting: this loop is the one retry.
        connection.set_retry(Retry(NoBackoff(), 0))
        self.url, self.deadline_s, self.max_wait_s = url, deadline_s, max_wait_s
        self.stop, self.on_line = stop, on_line
        self.outages = 0
        self.outage_s = 0.0
        self.after_outage: Callable[[], None] = lambda: None  # runs once Redis is back (see BatchWriter)

    def call(self, step: Callable[[], T]) -> T:
        failed_at: float | None = None
        wait = FIRST_WAIT_S
        while True:
            try:
                result = step()
            except REDIS_LOST as exc:
                now = time.monotonic()
                detail = redact_text(str(exc), self.url).rstrip(".")
                if failed_at is None:
                    failed_at = now
                    self.on_line(
                        f"Redis at {redact_url(self.url)} unreachable ({detail}); retrying for up to "
                        f"{self.deadline_s:g} s (CHATLENS_REDIS_OUTAGE_S)"
                    )
                waited = now - failed_at
                if self.stop.is_set() or waited >= self.deadline_s:
                    raise RedisLost(detail, waited, self.stop.is_set()) from None
                self.stop.wait(min(wait, self.deadline_s - waited))
                wait = min(wait * 2, self.max_wait_s)
                continue
            if failed_at is not None:
                waited = time.monotonic() - failed_at
                self.outages += 1
                self.outage_s += waited
                self.on_line(f"Redis is back after {waited:.1f} s; going on")
                failed_at = None
                # What was written just before the outage may be lost with it (AOF everysec): re-checked.
                self.call(self.after_outage)
            return result


def stopped_line(lost: RedisLost, counts: ProduceCounts, source: str, run: str, url: str, stdin: bool) -> str:
    """The one line of a producer that could not reach Redis in time."""
    how = (
        "stopped while waiting for Redis"
        if lost.stopped
        else f"Redis unreachable for {lost.waited_s:.0f} s (CHATLENS_REDIS_OUTAGE_S)"
    )
    written = counts.enqueued + counts.already_present
    unwritten = counts.read - counts.dropped_missing - counts.dropped_duplicate - counts.rejected
    unwritten -= counts.not_selected + written
    rest = "the rest of stdin unread" if stdin else f"the rest of {source} unread"
    return (
        f"{how} at {redact_url(url)} ({lost.detail}): enqueued {counts.enqueued} messages "
        f"({counts.already_present} already stored) of {counts.read} rows read; not enqueued: "
        f"{max(unwritten, 0)} rows read and {rest}. Resume (stored messages are skipped): "
        f"{resume_command(source, run, url, stdin)}"
    )


def resume_command(source: str, run: str, url: str, stdin: bool) -> str:
    """This very command (as typed, when it was `chatlens produce ...` or `chatlens summarise FILE ...`),
    with any password masked."""
    argv = sys.argv[1:]
    if argv[:1] in (["produce"], ["summarise"]):
        command = "chatlens " + shlex.join(argv)
    else:
        command = f"chatlens produce {shlex.quote(source if not stdin else '-')} --run {run}"
    command = redact_text(command, url)
    return f"<the same input> | {command}" if stdin else command
