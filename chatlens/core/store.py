"""`RunStore`: writes a run's records (the producer's messages and run info, the worker's results and
summaries) under the key layout of `chatlens.core.keys`; it reads through `RunReader`."""

from __future__ import annotations

import os
import socket
import time
from collections import Counter

from redis import Redis
from redis.client import Pipeline

from chatlens.core import keys
from chatlens.core.message_stats import MessageStats
from chatlens.core.replication import ReplicaAck
from chatlens.core.run_reader import RunReader
from chatlens.core.schemas import MessageError, Prediction, RunInfo, Summary, SummaryError


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class RunStore(RunReader):
    def __init__(self, connection: Redis, ttl_s: int, ack: ReplicaAck | None = None) -> None:
        super().__init__(connection, ttl_s)
        # The worker's results and summaries are acknowledged by the replicas before its job may finish
        # (chatlens/core/replication.py); without `ack` (readers, tools) a write is not waited for.
        self.ack = ack if ack is not None else ReplicaAck(connection, replicas=0)

    # -- producer side ---------------------------------------------------------------------------
    def add_new_messages(
        self,
        pipe: Pipeline,
        run: str,
        encoded: dict[str, str],
        stats: MessageStats,
        per_conversation: Counter[str],
    ) -> None:
        """Messages not yet stored (as JSON, keyed by id), their share of the run's running stats and
        how many each conversation gained: the caller has checked they are new, so the counters count
        each message once."""
        if not encoded:
            return
        for cid, added in per_conversation.items():
            pipe.hincrby(keys.conversations(run), cid, added)
        pipe.expire(keys.conversations(run), self.ttl_s)
        pipe.hset(keys.messages(run), mapping=encoded)  # type: ignore[arg-type]  # redis-py's Mapping key type is invariant: dict[str, str] is a valid mapping
        pipe.expire(keys.messages(run), self.ttl_s)
        pipe.execute_command("BITFIELD", keys.message_stats(run), "OVERFLOW", "WRAP", *stats.increments())
        pipe.expire(keys.message_stats(run), self.ttl_s)

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

    # -- worker side -----------------------------------------------------------------------------
    def write_results(
        self, run: str, model: str, predictions: list[Prediction], errors: list[MessageError]
    ) -> None:
        """One round trip per batch (and WAIT, where there are replicas). HSET on the message id makes a
        retried batch overwrite, not add."""

        def fill(pipe: Pipeline) -> None:
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

        self.ack.write(fill, f"results of {len(predictions) + len(errors)} messages for {model} (run {run})")

    def _count_progress(self, pipe: Pipeline, run: str, messages: int) -> None:
        """Per-minute throughput and the results version, in the writer's own pipeline (see keys)."""
        if messages:
            pipe.hincrby(keys.throughput(run), str(int(time.time()) // 60), messages)
            pipe.expire(keys.throughput(run), self.ttl_s)
        pipe.incr(keys.results_version(run))
        pipe.expire(keys.results_version(run), self.ttl_s)

    def write_summary(self, run: str, summary: Summary) -> None:
        def fill(pipe: Pipeline) -> None:
            pipe.hset(keys.summaries(run), summary.conversation_id, summary.model_dump_json())
            pipe.expire(keys.summaries(run), self.ttl_s)
            pipe.hdel(keys.summary_errors(run), summary.conversation_id)
            self._count_summary(pipe, run)
            self._count_progress(pipe, run, 0)

        self.ack.write(fill, f"summary of conversation {summary.conversation_id} (run {run})")

    def write_summary_error(self, run: str, error: SummaryError) -> None:
        with self.redis.pipeline() as pipe:
            pipe.hset(keys.summary_errors(run), error.conversation_id, error.model_dump_json())
            pipe.expire(keys.summary_errors(run), self.ttl_s)
            self._count_summary(pipe, run)
            pipe.execute()

    def _count_summary(self, pipe: Pipeline, run: str) -> None:
        """A conversation answered (a summary or its error) this minute: the summaries' rate in status."""
        pipe.hincrby(keys.summary_throughput(run), str(int(time.time()) // 60), 1)
        pipe.expire(keys.summary_throughput(run), self.ttl_s)

    def record_model_load(self, model: str) -> int:
        return int(self.redis.hincrby(keys.MODEL_LOADS, f"{process_name()}:{model}", 1))

    def record_peak_rss(self, megabytes: float) -> None:
        self.redis.hset(keys.WORKER_PEAK_RSS, process_name(), f"{megabytes:.1f}")
