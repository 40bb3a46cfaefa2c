"""Redis Sentinel with a real primary, replica and three sentinels: a failover mid-batch, a producer
stream across one, what the new primary holds, a WAIT that times out, and the connection failures.

Workers serve the slow toy classifier (tests/fixtures/slow_classifier.py, 4 s a batch), so that a primary
can die in the middle of a batch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.utils import as_text

from chatlens.bench.redis_sentinel import SentinelGroup, TlsClient
from chatlens.bench.redis_server import ServerTls
from chatlens.core import keys
from chatlens.core import queues as q
from chatlens.core.connection import connect
from chatlens.core.errors import ServiceUnavailable
from chatlens.core.replication import ReplicaAck, ReplicationTimeout
from chatlens.core.schemas import Prediction
from chatlens.core.store import RunStore
from tests.fixtures import slow_classifier
from tests.fixtures.slow_classifier import QUEUE, held_by, produce_slow_batches
from tests.fixtures.tls_certs import make_tls_files
from tests.helpers import chatlens_cmd, kill_group, run_chatlens, subprocess_env, wait_until

FAST_RECOVERY = {  # seconds, not the production 20 s + 5 s and 60 s + 30 s
    "CHATLENS_EXECUTION_TTL_S": "10",
    "CHATLENS_HEARTBEAT_INTERVAL_S": "1",
    "CHATLENS_RECLAIM_INTERVAL_S": "1",
    "CHATLENS_STRANDED_SWEEP_INTERVAL_S": "1",
    "CHATLENS_STRANDED_GRACE_S": "0",
}


@pytest.fixture(autouse=True)
def slow_registered() -> Iterator[None]:
    slow_classifier.register()
    yield


def start_worker(url: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fixtures.slow_classifier", "--queue", QUEUE, "--name", name],
        env=subprocess_env(CHATLENS_REDIS_URL=url, CHATLENS_CLASSIFIERS="slow", **FAST_RECOVERY),
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: a test can kill it, or find what it left
    )


def replicated(connection: redis.Redis) -> None:
    """Returns once the replicas hold everything written so far (a write of its own, WAITed for: the
    replication stream is in order)."""
    ReplicaAck(connection, timeout_ms=5_000).write(lambda pipe: pipe.set("test:mark", "1"), "a mark")


def replica_of(group: SentinelGroup) -> int:
    primary = group.primary()
    (replica,) = [n for n in group.nodes if n is not primary and n.running]
    assert replica.pid is not None
    return replica.pid


def test_a_worker_rides_a_failover_mid_batch_with_its_model_still_loaded(
    group: SentinelGroup, tmp_path: Path
) -> None:
    url = group.url
    produce_slow_batches(url, tmp_path, "mid", batches=3)
    client = connect(url)
    worker = start_worker(url, "w", tmp_path / "w.log")
    try:
        wait_until(lambda: held_by(client, "w"), 90, "the worker to start a batch")
        old = group.kill_primary()
        failover_s = group.wait_for_failover(old.port)
        group.revive(old)
        wait_until(lambda: client.hlen(keys.results("mid", "slow")) == 6, 120, "every result")
        assert worker.poll() is None, (tmp_path / "w.log").read_text()  # the same process throughout
    finally:
        kill_group(worker)
    assert failover_s < 30
    loads = {as_text(k): int(v) for k, v in client.hgetall(keys.MODEL_LOADS).items()}
    assert [n for k, n in loads.items() if k.endswith(":slow")] == [1], loads  # loaded once, kept
    assert Queue(QUEUE, connection=client, serializer=q.SERIALIZER).failed_job_registry.count == 0
    log = (tmp_path / "w.log").read_text()
    assert "Traceback" not in log and str(group.password) not in log


def test_the_new_primary_holds_the_acknowledged_prefix_and_lost_jobs_come_back(
    group: SentinelGroup, tmp_path: Path
) -> None:
    url = group.url
    produce_slow_batches(
        url, tmp_path, "prefix", batches=3
    )  # counted by the producer only once the replica had it
    client = connect(url)
    queue = Queue(QUEUE, connection=client, serializer=q.SERIALIZER)
    # A worker took a job off its queue and died before it started it: in no list, the sweep's to find.
    popped = client.lpop(queue.key)
    assert isinstance(popped, bytes)
    taken = popped.decode()
    first = start_worker(url, "first", tmp_path / "first.log")
    second = None
    try:
        wait_until(lambda: held_by(client, "first"), 90, "the first worker to start a batch")
        (running,) = held_by(client, "first")
        replicated(client)
        replica = replica_of(group)
        os.kill(replica, signal.SIGSTOP)  # from here on, nothing reaches the replica until the failover
        try:
            with pytest.raises(ReplicationTimeout):
                ReplicaAck(client, timeout_ms=200, attempts=1).write(
                    lambda pipe: pipe.hset(keys.messages("prefix"), "unacknowledged", "{}"), "a write"
                )
            for i in range(20):  # a sequence the old primary acknowledged to nobody's replicas
                client.set(f"test:seq:{i}", i)
            kill_group(first)  # dies with the batch it was running
            old = group.kill_primary()
        finally:
            os.kill(replica, signal.SIGCONT)
        group.wait_for_failover(old.port)
        group.revive(old)
        # Every batch the producer counted is there; of what came after, a prefix (what the replica had
        # read off its socket before the failover), never a later write without an earlier one.
        assert client.hlen(keys.messages("prefix")) in (6, 7)
        present = [client.exists(f"test:seq:{i}") for i in range(20)]
        assert present == sorted(present, reverse=True), present
        # The job the dead worker ran comes back by the reclaim, the one taken and never started by
        # the sweep; nothing counted is lost.
        second = start_worker(url, "second", tmp_path / "second.log")
        wait_until(lambda: client.hlen(keys.results("prefix", "slow")) == 6, 120, "every result")
    finally:
        for proc in (first, second):
            if proc is not None:
                kill_group(proc)
    log = (tmp_path / "second.log").read_text()
    assert f"reclaimed job {running}" in log
    assert "stranded-job sweep: re-enqueued 1" in log and taken in log


def test_a_producer_stream_goes_on_across_a_failover_and_exits_0(
    group: SentinelGroup, tmp_path: Path
) -> None:
    env = subprocess_env(CHATLENS_REDIS_URL=group.url, CHATLENS_SUMMARISE="false")
    producer = subprocess.Popen(
        chatlens_cmd("produce", "-", "--run", "live", "--flush-ms", "100"),
        env=env, cwd=tmp_path, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert producer.stdin is not None and producer.stdout is not None and producer.stderr is not None
    client = connect(group.url)
    rows = [
        json.dumps({"conversation_id": str(i % 7), "message": f"streamed message {i}"}) for i in range(200)
    ]
    try:
        for i, row in enumerate(rows):
            producer.stdin.write(row + "\n")
            producer.stdin.flush()
            if i == 100:
                wait_until(lambda: client.hlen(keys.messages("live")) > 0, 60, "the first batches")
                old = group.kill_primary()
            time.sleep(0.01)
        failover_s = group.wait_for_failover(old.port)
        group.revive(old)
        producer.stdin.close()
        assert producer.wait(120) == 0, producer.stderr.read()
    finally:
        if producer.poll() is None:
            producer.kill()
    out = producer.stdout.read() + producer.stderr.read()
    assert "read 200 / " in out and "enqueued 200" in out and "Traceback" not in out, out
    assert client.hlen(keys.messages("live")) == 200
    assert failover_s < 30 and str(group.password) not in out


def test_a_wait_that_times_out_is_sent_again_then_the_producer_stops_with_exit_3(
    group: SentinelGroup, tmp_path: Path
) -> None:
    client = connect(group.url)
    replica = replica_of(group)
    data = tmp_path / "m.csv"
    data.write_text("conversation_id,message\n1,hello there\n1,general kenobi\n")
    os.kill(replica, signal.SIGSTOP)  # connected, so counted, but acknowledging nothing
    try:
        ack = ReplicaAck(client, timeout_ms=200, attempts=3)
        started = time.monotonic()
        with pytest.raises(ReplicationTimeout) as raised:
            ack.write(lambda pipe: pipe.set("test:k", "v"), "a test write")
        assert ack.resends == 2 and time.monotonic() - started >= 0.6
        assert "0 of 1 replica(s)" in str(raised.value) and raised.value.exit_code == 3
        # A worker's results wait the same way: its job cannot finish (RQ would retry it).
        store = RunStore(client, 3600, ReplicaAck(client, timeout_ms=200, attempts=1))
        prediction = Prediction(
            message_id="m1", model="slow", model_version="1", label="Neutral", confidence=0.5,
            batch_size=1, batch_latency_ms=1.0, worker="w",
        )  # fmt: skip
        with pytest.raises(ReplicationTimeout, match="results of 1 messages for slow"):
            store.write_results("w", "slow", [prediction], [])
        env = subprocess_env(
            CHATLENS_REDIS_URL=group.url,
            CHATLENS_SUMMARISE="false",
            CHATLENS_REDIS_WAIT_TIMEOUT_MS="200",
            CHATLENS_REDIS_WAIT_ATTEMPTS="2",
        )
        done = run_chatlens("produce", str(data), "--run", "w", env=env, timeout=300)
    finally:
        os.kill(replica, signal.SIGCONT)
    out = done.stdout + done.stderr
    assert done.returncode == 3, out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "replica(s) acknowledged" in errors[0], out
    assert "Traceback" not in out and str(group.password) not in out
    # Once the replica is back, the same write is acknowledged at once.
    ReplicaAck(client, timeout_ms=5_000, attempts=1).write(lambda pipe: pipe.set("test:k", "v"), "again")


def test_a_wrong_password_or_service_is_one_line_exit_3_without_the_password(group: SentinelGroup) -> None:
    wrong = group.url.replace(str(group.password), "not-the-Pa55")
    with pytest.raises(ServiceUnavailable) as raised:
        connect(wrong)
    assert "authentication failed" in str(raised.value) and "not-the-Pa55" not in str(raised.value)
    unknown = group.url.replace("/chatlens/", "/nosuch/")
    with pytest.raises(ServiceUnavailable, match="know no primary named 'nosuch'") as raised:
        connect(unknown)
    assert str(group.password) not in str(raised.value)
    done = run_chatlens("failed", env=subprocess_env(CHATLENS_REDIS_URL=wrong), timeout=120)
    lines = (done.stdout + done.stderr).strip().splitlines()
    assert done.returncode == 3 and len(lines) == 1 and "not-the-Pa55" not in lines[0], lines


def test_rediss_sentinel_speaks_tls_to_sentinels_and_primary_through_a_failover(tmp_path: Path) -> None:
    files = make_tls_files(tmp_path / "tls")
    tls = ServerTls(cert_file=files.server_cert, key_file=files.server_key, ca_file=files.ca)
    client_cert = TlsClient(files.client_cert, files.client_key)
    with SentinelGroup(tmp_path / "redis", password="tls-Pa55", tls=tls, tls_client=client_cert) as tls_group:
        url = tls_group.url
        assert url.startswith("rediss+sentinel://")
        client = connect(url, ca_file=files.ca, cert_file=files.client_cert, key_file=files.client_key)
        ReplicaAck(client, timeout_ms=5_000).write(lambda pipe: pipe.set("test:tls", "1"), "a TLS write")
        old = tls_group.kill_primary()
        assert tls_group.wait_for_failover(old.port) < 30
        assert client.get("test:tls") == b"1"  # acknowledged, so on the new primary; same client
        with pytest.raises(ServiceUnavailable) as raised:  # no client certificate: refused, one line
            connect(url, ca_file=files.ca, failover_s=1)
        assert "tls-Pa55" not in str(raised.value) and "\n" not in str(raised.value)
