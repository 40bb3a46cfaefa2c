"""The one ingest path: ids and positions (a file and stdin alike); flush by time; conversations
summarised when quiet and again when they grow; --follow through rotation; SIGTERM; drop; an end-to-end
run with a worker on a live stream."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from rq import Queue
from typer.testing import CliRunner

from chatlens.cli.app import app
from chatlens.core import keys, queues
from chatlens.core.connection import FAKE_URL, connect
from chatlens.core.schemas import message_id
from chatlens.core.settings import Settings
from chatlens.core.store import RunStore
from producer.csv_out import RejectsFile
from producer.flush import BatchWriter
from producer.pipeline import STDIN, produce_input
from producer.stream import Ingest, StreamOptions
from tests.helpers import subprocess_env

runner = CliRunner()

ROWS = [
    {"conversation_id": "1", "message": "Hello there", "sentiment": "happy"},
    {"conversation_id": "1", "message": "How are you?", "sentiment": "Curious to dive deeper"},
    {"conversation_id": "2", "message": "", "sentiment": "Sad"},  # missing: dropped, still a position
    {"conversation_id": "2", "message": "Fine", "sentiment": "Neutral"},
    {"conversation_id": "1", "message": "Hello there", "sentiment": "Happy"},  # duplicate of row 1
    {"conversation_id": "3", "message": "bad label", "sentiment": "Thrilled"},  # rejected
    {"conversation_id": 7, "message": "numeric id", "sentiment": None},
    {"conversation_id": "2", "message": "nul \x00 byte", "sentiment": "Sad"},  # rejected
]


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture
def fake() -> redis.Redis:
    connection = connect(FAKE_URL)
    connection.flushall()
    return connection


def stored(connection: redis.Redis, run: str) -> dict[str, dict]:
    return {k.decode(): json.loads(v) for k, v in connection.hgetall(keys.messages(run)).items()}


def test_ids_positions_and_counts_fed_both_ways(fake: redis.Redis, tmp_path: Path) -> None:
    """A message's id is a hash of (conversation, position, text); its position is its index in its
    conversation in input order, missing and rejected rows counted. The same from a file and stdin."""
    path = tmp_path / "m.jsonl"
    path.write_text(jsonl(ROWS))
    base = ["--redis-url", FAKE_URL]
    by_file = runner.invoke(app, ["produce", str(path), "--run", "f", *base])
    by_stdin = runner.invoke(app, ["produce", "-", "--run", "s", *base], input=jsonl(ROWS))
    assert by_file.exit_code == 0 and by_stdin.exit_code == 0, by_file.output + by_stdin.output
    assert "read 8 / dropped-missing 1 / dropped-duplicate 1 / rejected 2" in by_stdin.output
    expected = {
        message_id(cid, position, text): (cid, position, text, label)
        for cid, position, text, label in [
            ("1", 0, "Hello there", "Happy"),
            ("1", 1, "How are you?", "Curious to dive deeper"),
            ("2", 1, "Fine", "Neutral"),  # position 0 was the missing message
            ("7", 0, "numeric id", None),
        ]
    }
    for run in ("f", "s"):
        got = {
            k: (m["conversation_id"], m["position"], m["text"], m["label"])
            for k, m in stored(fake, run).items()
        }
        assert got == expected
    store = RunStore(fake, 3600)
    file_info, stream_info = store.run_info("f"), store.run_info("s")
    assert file_info and stream_info
    assert (stream_info.messages, stream_info.labelled) == (file_info.messages, file_info.labelled) == (4, 3)
    assert stream_info.dataset_hash == file_info.dataset_hash
    assert (stream_info.source, file_info.source) == ("stdin", str(path))
    assert (tmp_path / "chatlens-rejects-s.csv").read_text() == (
        tmp_path / "chatlens-rejects-f.csv"
    ).read_text()
    # Again: everything is already present, nothing new is enqueued.
    again = runner.invoke(app, ["produce", "-", "--run", "f", *base], input=jsonl(ROWS))
    assert "enqueued 0 / already-present 4" in again.output


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_ingest(connection: redis.Redis, tmp_path: Path, clock: Clock, summarise: bool = True) -> Ingest:
    settings = Settings(summarise=summarise, batch_size=4)
    writer = BatchWriter(connection, settings, "live", max_queued=1000)
    options = StreamOptions(flush_s=0.3, conversation_idle_s=5.0, summarise=summarise, max_chars=5000)
    return Ingest(writer, options, RejectsFile(tmp_path / "rejects.csv"), clock=clock)


def summary_jobs(connection: redis.Redis) -> list[dict]:
    """The queued conversations, in order, whichever job carries them (the extractive one packs several)."""
    queue = Queue(queues.summarise_queue("extractive"), connection=connection, serializer=queues.SERIALIZER)
    jobs = queue.get_jobs()
    assert all(job.func_name == queues.SUMMARISE_MANY_JOB for job in jobs)
    return [c for job in jobs for c in job.kwargs["conversations"]]


def test_a_trickle_is_flushed_by_time_and_a_quiet_conversation_summarised(
    fake_redis: redis.Redis, tmp_path: Path
) -> None:
    clock = Clock()
    ingest = make_ingest(fake_redis, tmp_path, clock)
    ingest.add((1, "a", "first turn", "Happy", None))
    ingest.tick()
    assert fake_redis.hlen(keys.messages("live")) == 0  # not yet: neither full nor old
    clock.now += 0.31
    ingest.tick()
    assert fake_redis.hlen(keys.messages("live")) == 1
    assert RunStore(fake_redis, 60).run_info("live") is None  # on_record is the CLI's; none here
    ingest.add((2, "a", "second turn", None, None))
    clock.now += 0.31
    ingest.tick()
    assert summary_jobs(fake_redis) == []  # still talking
    clock.now += 5.1
    ingest.tick()
    assert [c["turns"] for c in summary_jobs(fake_redis)] == [["first turn", "second turn"]]
    # The conversation grows later: summarised again, with its earlier turns read back from Redis.
    ingest.add((3, "a", "third turn", None, None))
    counts = ingest.finish()
    turns = [c["turns"] for c in summary_jobs(fake_redis)]
    assert turns == [["first turn", "second turn"], ["first turn", "second turn", "third turn"]]
    assert (counts.enqueued, counts.conversations) == (3, 2)


def test_drop_deletes_every_key_of_the_run(fake: redis.Redis, tmp_path: Path) -> None:
    base = ["--redis-url", FAKE_URL]
    runner.invoke(app, ["produce", "-", "--run", "gone", *base], input=jsonl(ROWS[:2]))
    runner.invoke(app, ["produce", "-", "--run", "kept", *base], input=jsonl(ROWS[:2]))
    refused = runner.invoke(app, ["drop", "--run", "gone", *base])
    assert refused.exit_code == 2 and "--yes" in refused.output
    assert fake.exists(keys.messages("gone"))
    result = runner.invoke(app, ["drop", "--run", "gone", "--yes", *base])
    assert result.exit_code == 0, result.output
    assert fake.keys("chatlens:run:gone:*") == [] and fake.zscore(keys.RUNS, "gone") is None
    assert fake.exists(keys.messages("kept")) and RunStore(fake, 60).run_info("kept") is not None


@pytest.mark.slow
def test_a_live_stream_is_classified_and_summarised_while_still_open(redis_url: str, tmp_path: Path) -> None:
    """`produce -` as a process with its stdin held open, a real worker serving both queues: a trickle
    is classified within the flush interval, a conversation summarised once quiet, before stdin closes."""
    env = subprocess_env(CHATLENS_REDIS_URL=redis_url, CHATLENS_CLASSIFIERS="toy")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            with_toy(
                "from worker.cli import WorkerCommands; from worker.runner import WORKER_JOBS",
                "WorkerCommands(WORKER_JOBS).worker",
            ),
        ],
        env=env,
    )
    producer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            with_toy("from producer.cli import produce", "produce"),
            *("-", "--run", "live", "--flush-ms", "200", "--conversation-idle-s", "1"),
        ],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    connection = redis.Redis.from_url(redis_url)
    try:
        assert producer.stdin is not None
        producer.stdin.write(jsonl([{"conversation_id": "a", "message": "I love this"}]))
        producer.stdin.flush()
        wait_for(lambda: connection.hlen(keys.results("live", "toy")) == 1, 60)
        wait_for(lambda: connection.hexists(keys.summaries("live"), "a"), 60)
        assert producer.poll() is None  # all of it while the stream is open
        producer.stdin.write(jsonl([{"conversation_id": "b", "message": "What now?"}]))
        producer.stdin.close()
        assert producer.wait(60) == 0
        assert producer.stdout is not None
        out = producer.stdout.read()
        assert "read 2 / " in out and "enqueued 2" in out
        wait_for(lambda: connection.hlen(keys.results("live", "toy")) == 2, 60)
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:  # an idle worker's warm shutdown can hang (a worker issue)
            worker.kill()
            worker.wait()
        if producer.poll() is None:
            producer.kill()


def with_toy(imports: str, command: str) -> str:
    """A chatlens command in a process that registered the toy classifier first (as a user's plugin)."""
    return (
        "import sys, typer; from chatlens.backends.classifier import CLASSIFIERS; "
        f"CLASSIFIERS.add('toy', 'tests.fixtures.toy_classifier:build'); {imports}; typer.run({command})"
    )


def wait_for(condition, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_follow_reads_a_growing_file_through_rotation_and_stops_cleanly(
    fake: redis.Redis, tmp_path: Path
) -> None:
    path = tmp_path / "live.jsonl"
    path.write_text(jsonl([{"conversation_id": "a", "message": "one"}]))
    stop = threading.Event()
    settings = Settings(summarise=False, flush_ms=50)
    done: list[object] = []
    thread = threading.Thread(
        target=lambda: done.append(
            produce_input(settings, path, "f", follow=True, out_dir=tmp_path, redis_url=FAKE_URL, stop=stop)
        )
    )
    thread.start()
    try:
        wait_for(lambda: fake.hlen(keys.messages("f")) == 1, 20)
        with path.open("a") as handle:  # appended: picked up
            handle.write(jsonl([{"conversation_id": "a", "message": "two"}]))
        wait_for(lambda: fake.hlen(keys.messages("f")) == 2, 20)
        path.rename(tmp_path / "live.jsonl.1")  # rotated: a new file under the same name
        path.write_text(jsonl([{"conversation_id": "b", "message": "three"}]))
        wait_for(lambda: fake.hlen(keys.messages("f")) == 3, 20)
    finally:
        stop.set()
        thread.join(20)
    assert not thread.is_alive()
    counts = done[0]
    assert (counts.read, counts.enqueued) == (3, 3)  # type: ignore[attr-defined]


@pytest.mark.slow
def test_sigterm_flushes_what_was_read_and_prints_the_count(redis_url: str, tmp_path: Path) -> None:
    import signal

    env = subprocess_env(CHATLENS_REDIS_URL=redis_url, CHATLENS_SUMMARISE="false")
    producer = subprocess.Popen(
        [sys.executable, "-m", "chatlens.cli.app", "produce", "-", "--run", "term", "--flush-ms", "600000"],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert producer.stdin is not None and producer.stdout is not None
    producer.stdin.write(jsonl(ROWS[:2]))
    producer.stdin.flush()
    connection = redis.Redis.from_url(redis_url)
    # Its first line says it is reading, its signal handlers in place (imports can take 15 s on a busy
    # machine). A flush by time is 10 minutes away: nothing is stored before the signal.
    assert producer.stderr is not None
    assert producer.stderr.readline().startswith("reading stdin")
    time.sleep(1)
    assert connection.hlen(keys.messages("term")) == 0
    producer.send_signal(signal.SIGTERM)
    assert producer.wait(60) == 0, producer.stderr.read() if producer.stderr else ""
    out = producer.stdout.read()
    assert "read 2 / " in out and "enqueued 2" in out and "Traceback" not in out
    assert connection.hlen(keys.messages("term")) == 2


def test_a_stream_stopped_before_any_input_ends_cleanly_and_registers_nothing(
    fake: redis.Redis, tmp_path: Path
) -> None:
    """stdin held open and silent (a pipe nobody writes to yet), then a stop: the wait for the input's
    head is interrupted, the count is all zeros and no run is registered."""
    read_end, write_end = os.pipe()
    stop = threading.Event()
    done: list[object] = []
    with os.fdopen(read_end, "rb", buffering=0) as stdin:
        thread = threading.Thread(
            target=lambda: done.append(
                produce_input(
                    Settings(summarise=False), STDIN, "idle", redis_url=FAKE_URL, stdin=stdin, stop=stop
                )
            )
        )
        thread.start()
        time.sleep(0.5)
        stop.set()
        thread.join(20)
    os.close(write_end)
    assert not thread.is_alive()
    assert done[0].read == 0  # type: ignore[attr-defined]
    assert fake.keys("chatlens:*") == []
