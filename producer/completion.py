"""What a produce re-sends at the end of its input, so that a re-run leaves the run as complete as one
uninterrupted produce.

The rule, per classifier the producer is configured with: a stored message with neither a result nor
an error of that model is re-sent for classification, unless a job of the run that names it will still
run (queued, being taken by a worker, started, or waiting for a retry) or has failed (a failed job is
the operator's to requeue: `chatlens failed` / `chatlens requeue`). Likewise a conversation with no
summary, or one of fewer turns than the run stores, is re-sent for a summary unless this produce sent
it or a pending or failed summary job of the run names it; a conversation whose summary errored
counts as answered, as `RunReader.unsummarised` says.

So a re-run while workers still drain re-sends only what no job will ever do. The pending jobs are read
before the results, so a job that finishes in between has its results seen; a job caught moving between
RQ's lists during the read can still be sent twice. That work is idempotent (results and summaries are
written by id) and bounded by the jobs in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from redis import Redis
from rq import Queue
from rq.job import Job

from chatlens.core import keys, queues
from chatlens.core.run_reader import text
from chatlens.core.schemas import Conversation, Message
from chatlens.core.store import RunStore

_JOBS_PER_FETCH = 500
RESEND_GROUP = 2_048  # messages re-sent per round trip


@dataclass
class Resent:
    messages: dict[str, int] = field(default_factory=dict)  # model -> messages re-sent for classification
    conversations: int = 0  # re-sent for a summary
    in_failed_jobs: int = 0  # messages or conversations left to `chatlens requeue`

    def anything(self) -> bool:
        return bool(self.conversations or self.in_failed_jobs or any(self.messages.values()))

    def line(self) -> str:
        per_model = ", ".join(f"{n} for {model}" for model, n in sorted(self.messages.items())) or "0"
        failed = (
            f"; {self.in_failed_jobs} left in failed jobs (chatlens failed / chatlens requeue)"
            if self.in_failed_jobs
            else ""
        )
        return (
            f"re-sent: messages for classification {per_model} / conversations for a summary "
            f"{self.conversations}{failed}"
        )


@dataclass
class JobItems:
    pending: set[str] = field(default_factory=set)  # ids named by jobs that will still run
    failed: set[str] = field(default_factory=set)


def job_items(connection: Redis, queue: Queue, run: str, items: Callable[[dict], Iterable[str]]) -> JobItems:
    """The ids (`items` of a job's kwargs) named by the run's jobs of `queue`, pending or failed."""
    pending_ids = _members(connection.lrange(queue.key, 0, -1))
    pending_ids += _members(connection.lrange(queue.intermediate_queue_key, 0, -1))
    for registry in (queue.started_job_registry, queue.scheduled_job_registry):
        # Raw reads: a registry's own getters run RQ's cleanup, which moves jobs while they are counted.
        # A started entry is "job_id:execution_id".
        pending_ids += [e.split(":", 1)[0] for e in _members(connection.zrange(registry.key, 0, -1))]
    failed_ids = _members(connection.zrange(queue.failed_job_registry.key, 0, -1))
    found = JobItems()
    for ids, into in ((pending_ids, found.pending), (failed_ids, found.failed)):
        for start in range(0, len(ids), _JOBS_PER_FETCH):
            chunk = Job.fetch_many(
                ids[start : start + _JOBS_PER_FETCH], connection=connection, serializer=queues.SERIALIZER
            )
            for job in chunk:
                if job is not None and (job.description or "").endswith(f" of run {run}"):
                    into.update(items(job.kwargs))
    return found


def _members(values: object) -> list[str]:
    """A list or sorted set's members as text (redis-py types its replies loosely)."""
    return [text(v) for v in values]  # type: ignore[attr-defined]  # a sync client's list of bytes


def classify_ids(kwargs: dict) -> list[str]:
    return [item["id"] for item in kwargs.get("batch", {}).get("items", [])]


def summary_ids(kwargs: dict) -> list[str]:
    if "conversation" in kwargs:
        return [kwargs["conversation"]["conversation_id"]]
    return [c["conversation_id"] for c in kwargs.get("conversations", [])]


def unclassified(
    store: RunStore, queue: Queue, run: str, model: str, resend: Callable[[list[tuple[str, str]]], None]
) -> tuple[int, int]:
    """Hand `resend` each group of the run's messages that `model` will never answer (see the module
    docstring); returns (messages re-sent, messages left in failed jobs)."""
    redis = store.redis
    answered = int(redis.hlen(keys.results(run, model))) + int(redis.hlen(keys.errors(run, model)))
    if answered >= store.message_count(run):
        return 0, 0  # every message answered: nothing is read
    jobs = job_items(redis, queue, run, classify_ids)
    sent: set[str] = set()  # HSCAN may return an entry twice
    in_failed = 0
    group: list[tuple[str, str]] = []
    for chunk in store.message_chunks(run):
        ids = [mid for mid, _ in chunk]
        with redis.pipeline(transaction=False) as pipe:
            pipe.hmget(keys.results(run, model), ids)
            pipe.hmget(keys.errors(run, model), ids)
            results, errors = pipe.execute()
        for (mid, message), result, error in zip(chunk, results, errors, strict=True):
            if result is not None or error is not None or mid in jobs.pending or mid in sent:
                continue
            if mid in jobs.failed:
                in_failed += 1
                continue
            sent.add(mid)
            group.append((mid, message.text))
        if len(group) >= RESEND_GROUP:
            resend(group)
            group = []
    if group:
        resend(group)
    return len(sent), in_failed


def unsummarised(
    store: RunStore,
    queue: Queue,
    run: str,
    sent: set[str],
    known_ids: Callable[[str], list[str] | None],
) -> tuple[list[Conversation], int]:
    """The run's conversations that no summary job will ever cover (see the module docstring), with
    their turns from the messages hash, and the number left in failed jobs. A conversation whose stored
    messages this produce read is fetched by id; any other by one scan of the messages."""
    if not any(c not in sent for c in store.unsummarised(run)):
        return [], 0  # the usual end of a first produce: it sent every conversation itself
    # Read again after the pending jobs (see the module docstring for why in this order).
    jobs = job_items(store.redis, queue, run, summary_ids)
    lacking = [c for c in store.unsummarised(run) if c not in sent and c not in jobs.pending]
    in_failed = sum(1 for c in lacking if c in jobs.failed)
    wanted = [c for c in lacking if c not in jobs.failed]
    if not wanted:
        return [], in_failed
    sizes = store.redis.hmget(keys.conversations(run), wanted)
    turns: dict[str, list[Message]] = {cid: [] for cid in wanted}
    expected = {cid: int(size or 0) for cid, size in zip(wanted, sizes, strict=True)}
    by_id = [mid for cid in wanted if len(ids := known_ids(cid) or []) == expected[cid] for mid in ids]
    for message in store.messages_by_id(run, by_id).values():
        turns[message.conversation_id].append(message)
    # Any other conversation (or one whose stored turns are not those this produce read): one scan.
    scan = {cid for cid in wanted if len(turns[cid]) != expected[cid]}
    for cid in scan:
        turns[cid] = []
    if scan:
        for chunk in store.message_chunks(run):
            for _, message in chunk:
                if message.conversation_id in scan:
                    turns[message.conversation_id].append(message)
    conversations = [
        Conversation(
            run=run,
            conversation_id=cid,
            turns=[m.text for m in sorted({m.id: m for m in found}.values(), key=lambda m: m.position)],
        )
        for cid, found in turns.items()
        if found
    ]
    return conversations, in_failed
