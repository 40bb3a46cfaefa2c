"""The producer's batch when the replicas do not acknowledge it: sent again, only what the primary lacks,
so that nothing is stored, enqueued or counted twice; `ReplicationTimeout` (exit 3) once the sends are
spent. (The real WAIT, with a replica, is tests/sentinel/'s.)"""

from __future__ import annotations

import fakeredis
import pytest
from rq import Queue

from chatlens.core import keys
from chatlens.core import queues as q
from chatlens.core.replication import ReplicaAck, ReplicationTimeout
from chatlens.core.settings import Settings
from producer.flush import BatchWriter

GROUP = [(f"id{i}", "c1" if i < 3 else "c2", i, f"message {i}", None, None) for i in range(5)]


def writer(connection: fakeredis.FakeRedis, shortfalls: int, attempts: int = 5) -> BatchWriter:
    """A BatchWriter whose first `shortfalls` WAITs fall short."""
    batch_writer = BatchWriter(connection, Settings(summarise=False, batch_size=2), "r", max_queued=1000)
    ack = ReplicaAck(connection, replicas=0, attempts=attempts)
    answers = iter([False] * shortfalls)
    ack.confirmed = lambda pipe: next(answers, True)  # type: ignore[method-assign]
    batch_writer.ack = ack
    return batch_writer


def test_a_batch_the_replicas_did_not_acknowledge_is_sent_again_without_doubling_anything(
    fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("chatlens.core.replication.RESEND_PAUSE_S", 0)
    batch_writer = writer(fake_redis, shortfalls=2)
    assert len(batch_writer.write(list(GROUP))) == 5
    assert batch_writer.ack.resends == 2
    assert fake_redis.hlen(keys.messages("r")) == 5
    assert fake_redis.hgetall(keys.conversations("r")) == {b"c1": b"3", b"c2": b"2"}  # counted once
    assert Queue("classify-default", connection=fake_redis, serializer=q.SERIALIZER).count == 3
    assert (batch_writer.totals.enqueued, batch_writer.totals.batches) == (5, 3)


def test_a_batch_never_acknowledged_stops_the_producer_with_exit_3(
    fake_redis: fakeredis.FakeRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("chatlens.core.replication.RESEND_PAUSE_S", 0)
    batch_writer = writer(fake_redis, shortfalls=3, attempts=3)
    with pytest.raises(ReplicationTimeout) as raised:
        batch_writer.write(list(GROUP))
    assert raised.value.exit_code == 3 and "run r: a batch of 5 messages" in str(raised.value)
    assert batch_writer.totals.enqueued == 0  # not counted: nobody knows the replicas have it
