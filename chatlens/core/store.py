"""`RunStore`: reads and writes a run's records under the key layout of `chatlens.core.keys`."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from redis import Redis
from redis.client import Pipeline

from chatlens.core import keys
from chatlens.core.errors import ChatlensError
from chatlens.core.schemas import Message, MessageError, Prediction, RunInfo, Summary, SummaryError

_SCAN_CHUNK = 2_000
R = TypeVar("R", bound=BaseModel)


class CorruptRunInfo(ChatlensError):
    """The run's info record in Redis is not a RunInfo: the run cannot be read as a whole."""


@dataclass(frozen=True)
class CorruptRecord:
    """A hash entry in Redis that is not the JSON record its key promises (hand-edited, truncated, or
    written by another version): skipped by the readers below, and counted and reported by eval/export."""

    key: str
    field: str
    error: str


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RunStore:
    def __init__(self, connection: Redis, ttl_s: int) -> None:
        self.redis = connection
        self.ttl_s = ttl_s
        # Every corrupt entry the readers met, in the order met (a reader called twice lists it twice).
        self.corrupt: list[CorruptRecord] = []

    # -- producer side ---------------------------------------------------------------------------
    def existing_ids(self, run: str, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        present: set[str] = set()
        for start in range(0, len(ids), _SCAN_CHUNK):
            chunk = ids[start : start + _SCAN_CHUNK]
            flags = self.redis.hmget(keys.messages(run), chunk)
            present.update(i for i, flag in zip(chunk, flags, strict=True) if flag is not None)
        return present

    def add_messages(self, pipe: Pipeline, run: str, messages: Iterable[Message]) -> None:
        mapping = {m.id: m.model_dump_json() for m in messages}
        if mapping:
            pipe.hset(keys.messages(run), mapping=mapping)  # type: ignore[arg-type]  # redis-py's Mapping key type is invariant: dict[str, str] is a valid mapping
            pipe.expire(keys.messages(run), self.ttl_s)

    def save_run_info(self, info: RunInfo) -> None:
        with self.redis.pipeline() as pipe:
            pipe.set(keys.run_info(info.run), info.model_dump_json(), ex=self.ttl_s)
            pipe.zadd(keys.RUNS, {info.run: info.updated_at.timestamp()})
            pipe.execute()

    def run_info(self, run: str) -> RunInfo | None:
        raw = self.redis.get(keys.run_info(run))
        if not raw:
            return None
        try:
            return RunInfo.model_validate_json(raw)
        except ValidationError as exc:
            raise CorruptRunInfo(
                f"the record {keys.run_info(run)} in Redis is corrupt ({_first_problem(exc)}); "
                f"produce the run again (`chatlens produce FILE --run {run}`)"
            ) from None

    def latest_run(self) -> str | None:
        # Runs whose keys expired still sit in the index; skip them.
        for name in self.redis.zrevrange(keys.RUNS, 0, -1):
            run = _text(name)  # type: ignore[arg-type]  # redis-py types ZREVRANGE as if WITHSCORES could apply
            if self.redis.exists(keys.run_info(run)):
                return run
        return None

    # -- worker side -----------------------------------------------------------------------------
    def write_results(
        self, run: str, model: str, predictions: list[Prediction], errors: list[MessageError]
    ) -> None:
        """One round trip per batch. HSET on the message id makes a retried batch overwrite, not add."""
        with self.redis.pipeline() as pipe:
            if predictions:
                pipe.hset(
                    keys.results(run, model), mapping={p.message_id: p.model_dump_json() for p in predictions}
                )
                pipe.expire(keys.results(run, model), self.ttl_s)
                # A message that failed on an earlier try and succeeds now is no longer an error.
                pipe.hdel(keys.errors(run, model), *[p.message_id for p in predictions])
            if errors:
                pipe.hset(
                    keys.errors(run, model), mapping={e.message_id: e.model_dump_json() for e in errors}
                )
                pipe.expire(keys.errors(run, model), self.ttl_s)
            pipe.sadd(keys.models(run), model)
            pipe.expire(keys.models(run), self.ttl_s)
            self._count_progress(pipe, run, len(predictions) + len(errors))
            pipe.execute()

    def _count_progress(self, pipe: Pipeline, run: str, messages: int) -> None:
        """Per-minute throughput and the results version, in the writer's own pipeline (see keys)."""
        if messages:
            pipe.hincrby(keys.throughput(run), str(int(time.time()) // 60), messages)
            pipe.expire(keys.throughput(run), self.ttl_s)
        pipe.incr(keys.results_version(run))
        pipe.expire(keys.results_version(run), self.ttl_s)

    def write_summary(self, run: str, summary: Summary) -> None:
        with self.redis.pipeline() as pipe:
            pipe.hset(keys.summaries(run), summary.conversation_id, summary.model_dump_json())
            pipe.expire(keys.summaries(run), self.ttl_s)
            pipe.hdel(keys.summary_errors(run), summary.conversation_id)
            self._count_progress(pipe, run, 0)
            pipe.execute()

    def write_summary_error(self, run: str, error: SummaryError) -> None:
        with self.redis.pipeline() as pipe:
            pipe.hset(keys.summary_errors(run), error.conversation_id, error.model_dump_json())
            pipe.expire(keys.summary_errors(run), self.ttl_s)
            pipe.execute()

    def record_model_load(self, model: str) -> int:
        return int(self.redis.hincrby(keys.MODEL_LOADS, f"{process_name()}:{model}", 1))

    def record_peak_rss(self, megabytes: float) -> None:
        self.redis.hset(keys.WORKER_PEAK_RSS, process_name(), f"{megabytes:.1f}")

    # -- eval side -------------------------------------------------------------------------------
    def _scan(self, key: str) -> Iterator[tuple[str, bytes]]:
        for field, value in self.redis.hscan_iter(key, count=_SCAN_CHUNK):
            yield _text(field), value

    def _records(self, key: str, model: type[R]) -> dict[str, R]:
        """The hash's valid records; a corrupt entry is noted in `self.corrupt`, not raised."""
        found: dict[str, R] = {}
        for field, raw in self._scan(key):
            try:
                found[field] = model.model_validate_json(raw)
            except ValidationError as exc:
                self.corrupt.append(CorruptRecord(key, field, _first_problem(exc)))
        return found

    def messages(self, run: str) -> dict[str, Message]:
        return self._records(keys.messages(run), Message)

    def message_count(self, run: str) -> int:
        return int(self.redis.hlen(keys.messages(run)))

    def models(self, run: str) -> list[str]:
        return sorted(_text(m) for m in self.redis.smembers(keys.models(run)))

    def predictions(self, run: str, model: str) -> dict[str, Prediction]:
        return self._records(keys.results(run, model), Prediction)

    def result_count(self, run: str, model: str) -> int:
        return int(self.redis.hlen(keys.results(run, model)))

    def summary_count(self, run: str) -> int:
        return int(self.redis.hlen(keys.summaries(run)))

    def summaries(self, run: str) -> dict[str, Summary]:
        return self._records(keys.summaries(run), Summary)

    def summary_errors(self, run: str) -> dict[str, SummaryError]:
        return self._records(keys.summary_errors(run), SummaryError)

    def errors(self, run: str, model: str) -> dict[str, MessageError]:
        return self._records(keys.errors(run, model), MessageError)


def _first_problem(exc: ValidationError) -> str:
    problem = exc.errors()[0]
    where = ".".join(str(p) for p in problem["loc"])
    return f"{where}: {problem['msg']}" if where else problem["msg"]
