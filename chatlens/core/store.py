"""`RunStore`: reads and writes a run's records under the key layout of `chatlens.core.keys`."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator

from redis import Redis
from redis.client import Pipeline

from chatlens.core import keys
from chatlens.core.schemas import Message, MessageError, Prediction, RunInfo, Summary, SummaryError

_SCAN_CHUNK = 2_000


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RunStore:
    def __init__(self, connection: Redis, ttl_s: int) -> None:
        self.redis = connection
        self.ttl_s = ttl_s

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
            pipe.hset(keys.messages(run), mapping=mapping)
            pipe.expire(keys.messages(run), self.ttl_s)

    def save_run_info(self, info: RunInfo) -> None:
        with self.redis.pipeline() as pipe:
            pipe.set(keys.run_info(info.run), info.model_dump_json(), ex=self.ttl_s)
            pipe.zadd(keys.RUNS, {info.run: info.updated_at.timestamp()})
            pipe.execute()

    def run_info(self, run: str) -> RunInfo | None:
        raw = self.redis.get(keys.run_info(run))
        return RunInfo.model_validate_json(raw) if raw else None

    def latest_run(self) -> str | None:
        # Runs whose keys expired still sit in the index; skip them.
        for name in self.redis.zrevrange(keys.RUNS, 0, -1):
            run = _text(name)
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
            pipe.execute()

    def write_summary(self, run: str, summary: Summary) -> None:
        with self.redis.pipeline() as pipe:
            pipe.hset(keys.summaries(run), summary.conversation_id, summary.model_dump_json())
            pipe.expire(keys.summaries(run), self.ttl_s)
            pipe.hdel(keys.summary_errors(run), summary.conversation_id)
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

    def messages(self, run: str) -> dict[str, Message]:
        return {mid: Message.model_validate_json(raw) for mid, raw in self._scan(keys.messages(run))}

    def message_count(self, run: str) -> int:
        return int(self.redis.hlen(keys.messages(run)))

    def models(self, run: str) -> list[str]:
        return sorted(_text(m) for m in self.redis.smembers(keys.models(run)))

    def predictions(self, run: str, model: str) -> dict[str, Prediction]:
        return {mid: Prediction.model_validate_json(raw) for mid, raw in self._scan(keys.results(run, model))}

    def result_count(self, run: str, model: str) -> int:
        return int(self.redis.hlen(keys.results(run, model)))

    def summary_count(self, run: str) -> int:
        return int(self.redis.hlen(keys.summaries(run)))

    def summaries(self, run: str) -> dict[str, Summary]:
        return {cid: Summary.model_validate_json(raw) for cid, raw in self._scan(keys.summaries(run))}

    def summary_errors(self, run: str) -> dict[str, SummaryError]:
        return {
            cid: SummaryError.model_validate_json(raw) for cid, raw in self._scan(keys.summary_errors(run))
        }

    def errors(self, run: str, model: str) -> dict[str, MessageError]:
        return {
            mid: MessageError.model_validate_json(raw) for mid, raw in self._scan(keys.errors(run, model))
        }
