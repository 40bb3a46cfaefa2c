"""`RunReader`: reads a run's records under the key layout of `chatlens.core.keys` (status, eval,
export and results read through it; `RunStore` adds the producer's and the worker's writes)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from redis import Redis

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


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RunReader:
    def __init__(self, connection: Redis, ttl_s: int) -> None:
        self.redis = connection
        self.ttl_s = ttl_s
        # Every corrupt entry the readers met, in the order met (a reader called twice lists it twice).
        self.corrupt: list[CorruptRecord] = []

    def _present(self, key: str, ids: list[str]) -> set[str]:
        """The ids among `ids` that are fields of the hash `key`."""
        present: set[str] = set()
        for start in range(0, len(ids), _SCAN_CHUNK):
            chunk = ids[start : start + _SCAN_CHUNK]
            flags = self.redis.hmget(key, chunk)
            present.update(i for i, flag in zip(chunk, flags, strict=True) if flag is not None)
        return present

    def message_stats(self, run: str) -> tuple[int, str]:
        """(labelled messages, dataset hash) of what `add_new_messages` stored, without reading it back."""
        low, high, labelled = self.redis.execute_command(
            "BITFIELD", keys.message_stats(run), "GET", "i64", 0, "GET", "i64", 64, "GET", "i64", 128
        )
        return int(labelled), f"{(low % 2**64) ^ (high % 2**64):016x}"

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
            run = text(name)  # type: ignore[arg-type]  # redis-py types ZREVRANGE as if WITHSCORES could apply
            if self.redis.exists(keys.run_info(run)):
                runs.append(run)
                if len(runs) == limit:
                    break
        return runs

    def latest_run(self) -> str | None:
        newest = self.recent_runs(1)
        return newest[0] if newest else None

    # -- records -------------------------------------------------------------------------------
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
                    found.append((text(field), model.model_validate_json(raw)))
                except ValidationError as exc:
                    self.corrupt.append(CorruptRecord(key, text(field), _first_problem(exc)))
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
                ids = [text(field) for field in items]
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
        return sorted({keys.model_name(text(m)) for m in self.redis.smembers(keys.models(run))})

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

    def conversation_count(self, run: str) -> int:
        """The conversations the run's messages belong to: the summaries it expects."""
        return int(self.redis.hlen(keys.conversations(run)))

    def conversation_sizes(self, run: str) -> dict[str, int]:
        """Conversation id -> messages of it stored in the run."""
        return {
            text(cid): int(n)
            for chunk in self._scan_chunks(keys.conversations(run))
            for cid, n in chunk.items()
        }

    def unsummarised(self, run: str) -> list[str]:
        """Conversations with no summary, or a summary of fewer turns than the run now stores (it was
        written before the conversation grew); a conversation whose summary errored counts as answered."""
        sizes = self.conversation_sizes(run)
        written = {
            cid: s.turns for chunk in self._record_chunks(keys.summaries(run), Summary) for cid, s in chunk
        }
        failed = {text(cid) for chunk in self._scan_chunks(keys.summary_errors(run)) for cid in chunk}
        return sorted(cid for cid, n in sizes.items() if cid not in failed and written.get(cid, 0) < n)

    def errors(self, run: str, model: str) -> dict[str, MessageError]:
        return {mid: e for chunk in self.error_chunks(run, model) for mid, e in chunk}


def _first_problem(exc: ValidationError) -> str:
    problem = exc.errors()[0]
    where = ".".join(str(p) for p in problem["loc"])
    return f"{where}: {problem['msg']}" if where else problem["msg"]
