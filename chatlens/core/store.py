"""`RunStore`: reads and writes a run's records under the key layout of `chatlens.core.keys`."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from collections.abc import Callable, Iterator
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
KeyOf = Callable[[str, str], str]  # (run, model) -> a key of chatlens.core.keys: keys.results, keys.errors


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
        return self._present(keys.messages(run), ids)

    def _present(self, key: str, ids: list[str]) -> set[str]:
        """The ids among `ids` that are fields of the hash `key`."""
        present: set[str] = set()
        for start in range(0, len(ids), _SCAN_CHUNK):
            chunk = ids[start : start + _SCAN_CHUNK]
            flags = self.redis.hmget(key, chunk)
            present.update(i for i, flag in zip(chunk, flags, strict=True) if flag is not None)
        return present

    def add_new_messages(
        self, pipe: Pipeline, run: str, encoded: dict[str, str], stats: MessageStats
    ) -> None:
        """Messages not yet stored (as JSON, keyed by id) and their share of the run's running stats:
        the caller has checked they are new, so the counters count each message once."""
        if not encoded:
            return
        pipe.hset(keys.messages(run), mapping=encoded)  # type: ignore[arg-type]  # redis-py's Mapping key type is invariant: dict[str, str] is a valid mapping
        pipe.expire(keys.messages(run), self.ttl_s)
        pipe.execute_command("BITFIELD", keys.message_stats(run), "OVERFLOW", "WRAP", *stats.increments())
        pipe.expire(keys.message_stats(run), self.ttl_s)

    def message_stats(self, run: str) -> tuple[int, str]:
        """(labelled messages, dataset hash) of what `add_new_messages` stored, without reading it back."""
        low, high, labelled = self.redis.execute_command(
            "BITFIELD", keys.message_stats(run), "GET", "i64", 0, "GET", "i64", 64, "GET", "i64", 128
        )
        return int(labelled), f"{(low % 2**64) ^ (high % 2**64):016x}"

    def drop_run(self, run: str) -> int:
        """Delete every key of the run and its entry in the runs index; the number of keys deleted."""
        found = list(self.redis.scan_iter(match=keys.run_pattern(run), count=1_000))
        deleted = 0
        for start in range(0, len(found), 500):
            deleted += int(self.redis.unlink(*found[start : start + 500]))
        self.redis.zrem(keys.RUNS, run)
        return deleted

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

    def recent_runs(self, limit: int) -> list[str]:
        """The newest runs first, at most `limit`; runs whose keys expired (still in the index) skipped."""
        runs: list[str] = []
        for name in self.redis.zrevrange(keys.RUNS, 0, -1):
            run = _text(name)  # type: ignore[arg-type]  # redis-py types ZREVRANGE as if WITHSCORES could apply
            if self.redis.exists(keys.run_info(run)):
                runs.append(run)
                if len(runs) == limit:
                    break
        return runs

    def latest_run(self) -> str | None:
        newest = self.recent_runs(1)
        return newest[0] if newest else None

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
    def _records(self, key: str, model: type[R]) -> dict[str, R]:
        """The hash's valid records; a corrupt entry is noted in `self.corrupt`, not raised."""
        return {field: record for chunk in self._record_chunks(key, model) for field, record in chunk}

    def _scan_chunks(self, key: str) -> Iterator[dict]:
        """The hash's fields and values, a scan chunk at a time (bounded memory for a hash of any size)."""
        cursor = 0
        while True:
            cursor, chunk = self.redis.hscan(key, cursor=cursor, count=_SCAN_CHUNK)
            if chunk:
                yield chunk  # type: ignore[misc]  # field -> value, as HSCAN gives them
            if not int(cursor):
                return

    def _record_chunks(self, key: str, model: type[R]) -> Iterator[list[tuple[str, R]]]:
        """The hash's valid records, a scan chunk at a time."""
        for items in self._scan_chunks(key):
            found: list[tuple[str, R]] = []
            for field, raw in items.items():
                try:
                    found.append((_text(field), model.model_validate_json(raw)))
                except ValidationError as exc:
                    self.corrupt.append(CorruptRecord(key, _text(field), _first_problem(exc)))
            if found:
                yield found

    def message_chunks(self, run: str) -> Iterator[list[tuple[str, Message]]]:
        return self._record_chunks(keys.messages(run), Message)

    # -- a model's records, under its name and any old name it had (keys.LEGACY_MODEL_NAMES) ----------
    def _stored_names(self, run: str, model: str) -> list[str]:
        """The names `model`'s records of `run` are under: its own, then its old name where a worker
        from before names were one wrote some (an old run, or one written across the upgrade)."""
        old = [name for name, now in keys.LEGACY_MODEL_NAMES.items() if now == model]
        return [model, *(name for name in old if self.redis.sismember(keys.models(run), name))]

    def _newer(self, run: str, model: str, layouts: tuple[KeyOf, ...], ids: list[str]) -> set[str]:
        """The ids among `ids` with a record under `model`'s own name in any of `layouts`: a message
        classified again after the upgrade, whose old record is replaced as a retry's would be."""
        return set().union(*(self._present(layout(run, model), ids) for layout in layouts))

    def _model_chunks(
        self, run: str, model: str, layout: KeyOf, record: type[R], replaced_by: tuple[KeyOf, ...]
    ) -> Iterator[list[tuple[str, R]]]:
        own, *old = self._stored_names(run, model)
        yield from self._record_chunks(layout(run, own), record)
        for name in old:
            for chunk in self._record_chunks(layout(run, name), record):
                newer = self._newer(run, own, replaced_by, [mid for mid, _ in chunk])
                if kept := [(mid, r) for mid, r in chunk if mid not in newer]:
                    yield kept

    def _model_count(self, run: str, model: str, layout: KeyOf, replaced_by: tuple[KeyOf, ...]) -> int:
        own, *old = self._stored_names(run, model)
        count = int(self.redis.hlen(layout(run, own)))
        for name in old:
            for items in self._scan_chunks(layout(run, name)):
                ids = [_text(field) for field in items]
                count += len(ids) - len(self._newer(run, own, replaced_by, ids))
        return count

    def prediction_chunks(self, run: str, model: str) -> Iterator[list[tuple[str, Prediction]]]:
        return self._model_chunks(run, model, keys.results, Prediction, (keys.results,))

    def error_chunks(self, run: str, model: str) -> Iterator[list[tuple[str, MessageError]]]:
        # A result written later clears an error, as `write_results` does under one name.
        return self._model_chunks(run, model, keys.errors, MessageError, (keys.errors, keys.results))

    def messages_by_id(self, run: str, ids: list[str]) -> dict[str, Message]:
        """The valid messages among `ids` (HMGET: one round trip per chunk)."""
        return self._by_id(keys.messages(run), ids, Message)

    def predictions_by_id(self, run: str, model: str, ids: list[str]) -> dict[str, Prediction]:
        """As `messages_by_id`; a corrupt prediction is noted in `self.corrupt` (no scan meets it)."""
        found: dict[str, Prediction] = {}
        for name in self._stored_names(run, model):  # its own name first: a newer record wins
            missing = [i for i in ids if i not in found] if found else ids
            found.update(self._by_id(keys.results(run, name), missing, Prediction, note_corrupt=True))
        return found

    def _by_id(self, key: str, ids: list[str], model: type[R], note_corrupt: bool = False) -> dict[str, R]:
        found: dict[str, R] = {}
        for start in range(0, len(ids), _SCAN_CHUNK):
            chunk = ids[start : start + _SCAN_CHUNK]
            for field, raw in zip(chunk, self.redis.hmget(key, chunk), strict=True):
                if raw is None:
                    continue
                try:
                    found[field] = model.model_validate_json(raw)
                except ValidationError as exc:
                    # Messages: counted by the scan that met them (`_record_chunks`), not twice.
                    if note_corrupt:
                        self.corrupt.append(CorruptRecord(key, field, _first_problem(exc)))
        return found

    def messages(self, run: str) -> dict[str, Message]:
        return self._records(keys.messages(run), Message)

    def message_count(self, run: str) -> int:
        return int(self.redis.hlen(keys.messages(run)))

    def models(self, run: str) -> list[str]:
        """The models that wrote results for the run, by their registry keys, old names read as such."""
        return sorted({keys.model_name(_text(m)) for m in self.redis.smembers(keys.models(run))})

    def predictions(self, run: str, model: str) -> dict[str, Prediction]:
        return {mid: p for chunk in self.prediction_chunks(run, model) for mid, p in chunk}

    def result_count(self, run: str, model: str) -> int:
        return self._model_count(run, model, keys.results, (keys.results,))

    def error_count(self, run: str, model: str) -> int:
        return self._model_count(run, model, keys.errors, (keys.errors, keys.results))

    def summary_count(self, run: str) -> int:
        return int(self.redis.hlen(keys.summaries(run)))

    def summaries(self, run: str) -> dict[str, Summary]:
        return self._records(keys.summaries(run), Summary)

    def summary_errors(self, run: str) -> dict[str, SummaryError]:
        return self._records(keys.summary_errors(run), SummaryError)

    def errors(self, run: str, model: str) -> dict[str, MessageError]:
        return {mid: e for chunk in self.error_chunks(run, model) for mid, e in chunk}


class MessageStats:
    """A group of new messages' share of the run's stats: wrapping sums of a 128-bit digest of each
    (id, label), so the dataset hash does not depend on the order messages arrive in, and the labelled."""

    def __init__(self) -> None:
        self.low = 0
        self.high = 0
        self.labelled = 0

    def add(self, message_id: str, label: str | None) -> None:
        value = int.from_bytes(
            hashlib.blake2b(f"{message_id}\x1f{label or ''}".encode(), digest_size=16).digest()
        )
        self.low += value & _MASK64
        self.high += value >> 64
        self.labelled += label is not None

    def increments(self) -> list[object]:
        return [
            *("INCRBY", "i64", 0, _signed(self.low)),
            *("INCRBY", "i64", 64, _signed(self.high)),
            *("INCRBY", "i64", 128, self.labelled),
        ]


_MASK64 = 2**64 - 1


def _signed(value: int) -> int:
    value &= _MASK64
    return value - 2**64 if value >= 2**63 else value


def _first_problem(exc: ValidationError) -> str:
    problem = exc.errors()[0]
    where = ".".join(str(p) for p in problem["loc"])
    return f"{where}: {problem['msg']}" if where else problem["msg"]
