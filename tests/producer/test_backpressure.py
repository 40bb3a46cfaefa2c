"""Back-pressure: the producer never lets a classify or summary queue hold more than --max-queued jobs; it
waits, says why in one line, and goes on as a worker drains the queue."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from rq import Queue

from chatlens.core import queues
from chatlens.core.schemas import Conversation
from chatlens.core.settings import Settings
from producer.flush import BatchWriter


def test_the_producer_waits_at_the_bound_and_goes_on_as_the_queue_drains(fake_redis: redis.Redis) -> None:
    settings = Settings(summarise=False, batch_size=2)
    lines: list[str] = []
    writer = BatchWriter(fake_redis, settings, "bp", max_queued=3, on_wait=lines.append)
    queue_key = Queue(queues.classify_queue("default"), connection=fake_redis).key
    peak = 0
    stop = threading.Event()

    def slow_worker() -> None:  # takes one job off the queue every 20 ms, noting the longest queue
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, int(fake_redis.llen(queue_key)))
            if lines:
                fake_redis.lpop(queue_key)
            time.sleep(0.02)

    drain = threading.Thread(target=slow_worker)
    drain.start()
    try:
        for i in range(6):  # 6 groups of 2 batches of 2 messages: 12 jobs through a bound of 3
            writer.write(
                [(f"{i:02d}{j:018d}", "c", i * 4 + j, f"text {i} {j}", None, None) for j in range(4)]
            )
            peak = max(peak, int(fake_redis.llen(queue_key)))
    finally:
        stop.set()
        drain.join()
    assert writer.totals.batches == 12 and writer.totals.enqueued == 24
    assert peak <= 3
    assert len(lines) >= 1 and "classify-default holds" in lines[0] and "--max-queued" in lines[0]
    assert writer.totals.waited_s > 0


def test_a_queue_under_the_bound_is_not_waited_on(fake_redis: redis.Redis) -> None:
    settings = Settings(summarise=False, batch_size=2)
    lines: list[str] = []
    writer = BatchWriter(fake_redis, settings, "bp", max_queued=100, on_wait=lines.append)
    writer.write([(f"{j:020d}", "c", j, f"text {j}", None, None) for j in range(8)])
    assert lines == [] and writer.totals.batches == 4 and writer.totals.waited_s == 0


def refuse_to_wait(line: str) -> None:
    raise AssertionError(f"waited: {line}")


def test_the_summary_bound_counts_jobs_not_conversations(fake_redis: redis.Redis) -> None:
    items = [Conversation(run="bp", conversation_id=f"c{i}", turns=[f"turn {i}"]) for i in range(4)]
    queue = Queue(queues.summarise_queue("extractive"), connection=fake_redis, serializer=queues.SERIALIZER)
    for _ in range(2):
        queue.enqueue(queues.SUMMARISE_MANY_JOB, kwargs={"conversations": [], "backend": "extractive"})
    # 2 jobs queued + 4 conversations in 1 job = 3 jobs: at the bound, not past it.
    packed = BatchWriter(
        fake_redis, Settings(summary_job_conversations=4), "bp", max_queued=3, on_wait=refuse_to_wait
    )
    packed.summarise(items)
    assert queue.count == 3 and packed.totals.summaries == 4  # the count is of conversations
    # One conversation per job: 4 more jobs would pass the bound, so the writer waits.
    single = BatchWriter(
        fake_redis, Settings(summary_job_conversations=1), "bp", max_queued=6, on_wait=refuse_to_wait
    )
    with pytest.raises(AssertionError, match="summarise-extractive holds 3 jobs"):
        single.summarise(items)
