"""Summary jobs run in-process on fakeredis with stand-in summarisers: several conversations per job in one
`summarise_many` call, a failing conversation isolated and recorded, and how a failed job is listed."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import redis
from rq import Queue
from rq.timeouts import JobTimeoutException

from chatlens.backends.summariser import SummaryText
from chatlens.cli.job_functions import JOB_FUNCTIONS
from chatlens.core import keys
from chatlens.core import queues as q
from chatlens.core.settings import Settings
from chatlens.core.store import process_name
from worker.context import WorkerContext
from worker.dead_letters import failed_jobs
from worker.jobs import summarise_conversation, summarise_conversations


class OneByOne:
    """A generative backend's shape: `summarise` only. It cannot summarise a turn holding BOOM."""

    backend = "fake"
    model_id = "fake-model@1"

    def __init__(self) -> None:
        self.single: list[list[str]] = []

    def summarise(self, turns: Sequence[str]) -> SummaryText:
        self.single.append(list(turns))
        if any("BOOM" in t for t in turns):
            raise ValueError("cannot summarise BOOM")
        return SummaryText(" / ".join(turns), input_tokens=len(turns), output_tokens=2, calls=1)


class Batched(OneByOne):
    """The extractive backend's shape: `summarise_many` too, which fails whole if one conversation does."""

    def __init__(self, many_raises: type[Exception] = ValueError) -> None:
        super().__init__()
        self.many: list[list[list[str]]] = []
        self.many_raises = many_raises

    def summarise_many(self, conversations: Sequence[Sequence[str]]) -> list[SummaryText]:
        self.many.append([list(turns) for turns in conversations])
        if any("BOOM" in t for turns in conversations for t in turns):
            raise self.many_raises("cannot summarise BOOM")
        return [SummaryText(" / ".join(turns), len(turns), 2, 1) for turns in conversations]


def context(connection: redis.Redis, summariser: OneByOne) -> WorkerContext:
    ctx = WorkerContext(Settings(), connection)
    ctx.summarisers["fake"] = summariser  # as if preloaded: nothing is built
    return ctx


def conversation(cid: str, *turns: str) -> dict:
    return {"run": "r", "conversation_id": cid, "turns": list(turns)}


CONVERSATIONS = [
    conversation("c0", "hello", "hi"),
    conversation("c1", "one turn"),
    conversation("c2", "a", "b"),
]


def test_a_batched_backend_summarises_the_job_in_one_call(fake_redis: redis.Redis) -> None:
    summariser = Batched()
    ctx = context(fake_redis, summariser)
    result = summarise_conversations(ctx, CONVERSATIONS, "fake")
    assert result == {"run": "r", "conversations": 3, "summarised": 3, "errors": 0}
    assert summariser.many == [[["hello", "hi"], ["one turn"], ["a", "b"]]] and summariser.single == []
    summaries = ctx.store.summaries("r")
    assert {cid: s.text for cid, s in summaries.items()} == {
        "c0": "hello / hi",
        "c1": "one turn",
        "c2": "a / b",
    }
    assert [summaries[c].turns for c in ("c0", "c1", "c2")] == [2, 1, 2]
    assert all(s.backend == "fake" and s.model_id == "fake-model@1" for s in summaries.values())
    assert len({s.latency_ms for s in summaries.values()}) == 1  # an equal share of the one call
    assert ctx.store.summary_errors("r") == {} and ctx.metrics.window.summaries == 3
    assert fake_redis.hexists(keys.WORKER_PEAK_RSS, process_name())


def test_a_failing_conversation_is_recorded_the_others_written_and_the_job_raises(
    fake_redis: redis.Redis,
) -> None:
    summariser = Batched()
    ctx = context(fake_redis, summariser)
    jobs = [*CONVERSATIONS[:1], conversation("bad", "fine", "BOOM here"), *CONVERSATIONS[1:]]
    with pytest.raises(RuntimeError, match=r"^1 of 4 conversations .* \(first: bad: ValueError: cannot"):
        summarise_conversations(ctx, jobs, "fake")
    assert len(summariser.many) == 1 and len(summariser.single) == 4  # then one by one, to find it
    assert set(ctx.store.summaries("r")) == {"c0", "c1", "c2"}
    (error,) = ctx.store.summary_errors("r").values()
    assert (error.conversation_id, error.backend) == ("bad", "fake")
    assert error.error == "ValueError: cannot summarise BOOM"
    assert ctx.metrics.window.summaries == 3

    # RQ's retry, once the conversation can be summarised: written over, the error cleared.
    ctx.summarisers["fake"] = Batched()
    jobs[1] = conversation("bad", "fine", "no longer failing")
    assert summarise_conversations(ctx, jobs, "fake")["summarised"] == 4
    assert set(ctx.store.summaries("r")) == {"c0", "bad", "c1", "c2"} and ctx.store.summary_errors("r") == {}


def test_a_backend_without_summarise_many_goes_one_by_one(fake_redis: redis.Redis) -> None:
    summariser = OneByOne()
    ctx = context(fake_redis, summariser)
    assert summarise_conversations(ctx, CONVERSATIONS, "fake")["summarised"] == 3
    assert summariser.single == [["hello", "hi"], ["one turn"], ["a", "b"]]
    assert set(ctx.store.summaries("r")) == {"c0", "c1", "c2"}


def test_a_timeout_is_not_followed_by_one_call_per_conversation(fake_redis: redis.Redis) -> None:
    summariser = Batched(many_raises=JobTimeoutException)
    ctx = context(fake_redis, summariser)
    with pytest.raises(JobTimeoutException):
        summarise_conversations(ctx, [*CONVERSATIONS, conversation("slow", "BOOM")], "fake")
    assert summariser.single == [] and ctx.store.summaries("r") == {}


def test_a_job_of_one_conversation_from_an_older_producer_still_runs(fake_redis: redis.Redis) -> None:
    ctx = context(fake_redis, Batched())
    assert summarise_conversation(ctx, CONVERSATIONS[0], "fake")["conversation_id"] == "c0"
    (summary,) = ctx.store.summaries("r").values()
    assert (summary.text, summary.turns, summary.calls) == ("hello / hi", 2, 1)
    with pytest.raises(ValueError, match="BOOM"):
        summarise_conversation(ctx, conversation("bad", "BOOM"), "fake")
    assert set(ctx.store.summary_errors("r")) == {"bad"}


def test_a_failed_job_of_several_conversations_is_described_from_its_arguments(
    fake_redis: redis.Redis,
) -> None:
    settings = Settings()
    queue = Queue(q.summarise_queue("extractive"), connection=fake_redis, serializer=q.SERIALIZER)
    job = queue.enqueue(
        q.SUMMARISE_MANY_JOB, kwargs={"conversations": CONVERSATIONS, "backend": "extractive"}
    )
    queue.remove(job)
    queue.failed_job_registry.add(job)
    (failed,) = failed_jobs(fake_redis, settings, JOB_FUNCTIONS)
    assert (failed.run, failed.what, failed.foreign) == ("r", "summarise 3 conversations (extractive)", False)
