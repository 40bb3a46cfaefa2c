"""The producer under Redis loss, as a process against a real redis-server (AOF everysec) killed with -9:
an outage longer than CHATLENS_REDIS_OUTAGE_S ends with one line, exit 3, the password masked and the
command that resumes; a short one is ridden out; after a restart and the re-run, a burst worker leaves
no message, result or summary missing. And every producer wait ends on SIGTERM / SIGINT."""

from __future__ import annotations

import csv
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from chatlens.core import keys
from tests.helpers import SAMPLE_DATA, chatlens_cmd, run_chatlens, subprocess_env
from tests.redis_harness import RedisServer

pytestmark = pytest.mark.slow
PASSWORD = "pw-s3cret"
RUN = "outage"


def sample_rows(path: Path, n: int) -> Path:
    """The first `n` rows of the sample with distinct text, as CSV."""
    seen: set[str] = set()
    with (SAMPLE_DATA / "test.csv").open(newline="") as f, path.open("w", newline="") as g:
        writer = csv.DictWriter(g, fieldnames=["conversation_id", "message", "sentiment"])
        writer.writeheader()
        for row in csv.DictReader(f):
            if row["message"].strip() and row["message"] not in seen and len(seen) < n:
                seen.add(row["message"])
                writer.writerow({k: row[k] for k in writer.fieldnames})
    return path


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    with RedisServer(password=PASSWORD, data_dir=tmp_path / "redis", aof=True) as started:
        yield started


def wait_for(condition, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def producer(args: list[str], env: dict[str, str], cwd: Path, stdin: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        chatlens_cmd("produce", *args), env=env, cwd=cwd, text=True,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def assert_complete(client: redis.Redis, data: Path) -> None:
    """Every clean row stored, one result per message, one summary per conversation: nothing missing."""
    with data.open(newline="") as f:
        rows = list(csv.DictReader(f))
    messages = set(client.hkeys(keys.messages(RUN)))
    results = set(client.hkeys(keys.results(RUN, "default")))
    errors = set(client.hkeys(keys.errors(RUN, "default")))
    summaries = set(client.hkeys(keys.summaries(RUN)))
    assert len(messages) == len(rows)
    assert messages - results - errors == set() and not errors
    assert {c.decode() for c in summaries} == {r["conversation_id"] for r in rows}


@pytest.mark.parametrize("from_stdin", [False, True], ids=["file", "stdin"])
def test_an_outage_past_the_deadline_is_one_line_then_the_rerun_completes(
    server: RedisServer, tmp_path: Path, from_stdin: bool
) -> None:
    data = sample_rows(tmp_path / "m.csv", 400)
    # No worker and a bound of 4 jobs: the producer waits on back-pressure, mid-input, when Redis dies.
    env = subprocess_env(CHATLENS_REDIS_URL=server.url, CHATLENS_REDIS_OUTAGE_S="3", CHATLENS_MAX_QUEUED="4")
    args = ["-" if from_stdin else str(data), "--run", RUN, "--batch-size", "4"]  # groups of 128 rows
    proc = producer(args, env, tmp_path, stdin=from_stdin)
    if from_stdin:
        assert proc.stdin is not None
        proc.stdin.write(data.read_text())
        proc.stdin.flush()  # held open: a stream
    client = redis.Redis.from_url(server.url)
    wait_for(lambda: client.llen("rq:queue:classify-default") >= 32)
    # Registered before its first message was written: status, eval and drop see the half-written run.
    assert client.zscore(keys.RUNS, RUN) is not None and client.exists(keys.run_info(RUN))
    server.kill9()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    lines = err.strip().splitlines()
    assert "Traceback" not in err and PASSWORD not in err + out
    assert lines[-1].startswith("error: Redis unreachable for 3 s") and "enqueued " in lines[-1]
    resume = lines[-1].split("Resume (stored messages are skipped): ", 1)[1]
    assert resume.startswith("<the same input> | chatlens produce - " if from_stdin else "chatlens produce ")

    server.start()
    again_env = {**env, "CHATLENS_MAX_QUEUED": "2000"}
    command = shlex.split(resume.split(" | ", 1)[-1])[1:]  # the line's own command, `chatlens` dropped
    again = subprocess.run(
        chatlens_cmd(*command), env=again_env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
        input=data.read_text() if from_stdin else None,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "already-present" in again.stdout and "re-sent: " in again.stdout
    worked = run_chatlens("worker", "--burst", "--threads", "1", env=again_env)
    assert worked.returncode == 0, worked.stderr
    assert_complete(client, data)
    info = client.get(keys.run_info(RUN))
    assert info is not None and f'"messages":{client.hlen(keys.messages(RUN))}' in info.decode()


def test_a_short_outage_is_ridden_out(server: RedisServer, tmp_path: Path) -> None:
    data = sample_rows(tmp_path / "m.csv", 300)
    lines = data.read_text().splitlines(keepends=True)
    env = subprocess_env(CHATLENS_REDIS_URL=server.url, CHATLENS_REDIS_OUTAGE_S="60")
    proc = producer(["-", "--run", RUN, "--flush-ms", "50"], env, tmp_path, stdin=True)
    assert proc.stdin is not None
    proc.stdin.write("".join(lines[:150]))
    proc.stdin.flush()
    client = redis.Redis.from_url(server.url)
    wait_for(lambda: client.hlen(keys.messages(RUN)) == 149)
    server.kill9()  # what it acknowledged in the last second may be lost with the AOF's tail
    proc.stdin.write("".join(lines[150:]))
    proc.stdin.flush()
    time.sleep(2)
    server.start()
    out, err = proc.communicate(timeout=120)  # stdin closed: the end of the input
    assert proc.returncode == 0, err
    assert "Redis is back after" in err and PASSWORD not in err + out
    assert "read 300 / " in out
    worked = run_chatlens("worker", "--burst", "--threads", "1", env=env)
    assert worked.returncode == 0, worked.stderr
    assert_complete(client, data)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_backpressure_wait(redis_url: str, tmp_path: Path, sig: signal.Signals) -> None:
    # Groups of 32 batches: the first is written (a queue is only bounded once it holds jobs), the
    # second waits.
    data = sample_rows(tmp_path / "m.csv", 1000)
    env = subprocess_env(CHATLENS_REDIS_URL=redis_url, CHATLENS_SUMMARISE="false")
    proc = producer([str(data), "--run", "bp", "--max-queued", "2", "--batch-size", "10"], env, tmp_path)
    assert proc.stderr is not None
    assert proc.stderr.readline().startswith("waiting: classify-default holds")  # no worker: blocked
    time.sleep(1)
    sent = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    assert proc.returncode == 0, err
    # A poll of the queue is 0.5 s; the rest is the flush of what was read and the exit.
    assert took < 5, f"{took:.1f} s from the signal to the exit"
    assert "read 1000 / " in out and "enqueued 1000" in out and "Traceback" not in err
    assert redis.Redis.from_url(redis_url).hlen(keys.messages("bp")) == 1000


def test_a_signal_ends_the_wait_for_redis(server: RedisServer, tmp_path: Path) -> None:
    env = subprocess_env(CHATLENS_REDIS_URL=server.url, CHATLENS_REDIS_OUTAGE_S="600")
    proc = producer(["-", "--run", RUN, "--flush-ms", "50"], env, tmp_path, stdin=True)
    assert proc.stdin is not None
    proc.stdin.write("conversation_id,message,sentiment\nc,hello,Happy\n")
    proc.stdin.flush()
    client = redis.Redis.from_url(server.url)
    wait_for(lambda: client.hlen(keys.messages(RUN)) == 1)
    server.kill9()
    proc.stdin.write("c,another turn,Happy\n")
    proc.stdin.flush()
    assert proc.stderr is not None
    while "unreachable" not in proc.stderr.readline():
        pass
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 5
    assert proc.returncode == 3 and "Traceback" not in err and PASSWORD not in err
    assert err.strip().splitlines()[-1].startswith("error: stopped while waiting for Redis")


def lose_jobs(client: redis.Redis, queue: str, keep: int) -> int:
    """Jobs lost as a crash loses them: gone from their queue and their hash gone too."""
    lost = client.lrange(f"rq:queue:{queue}", keep, -1)
    client.ltrim(f"rq:queue:{queue}", 0, keep - 1)
    for job_id in lost:
        client.delete(f"rq:job:{job_id.decode()}")
    return len(lost)


def test_a_rerun_completes_a_run_that_lost_jobs_and_summaries(redis_url: str, tmp_path: Path) -> None:
    data = sample_rows(tmp_path / "m.csv", 300)
    env = subprocess_env(CHATLENS_REDIS_URL=redis_url)
    assert run_chatlens("produce", str(data), "--run", RUN, "--batch-size", "16", env=env).returncode == 0
    client = redis.Redis.from_url(redis_url)
    assert lose_jobs(client, "classify-default", 10) and lose_jobs(client, "summarise-extractive", 3)
    worked = run_chatlens("worker", "--burst", "--threads", "1", env=env)
    assert worked.returncode == 0, worked.stderr
    missing = client.hlen(keys.messages(RUN)) - client.hlen(keys.results(RUN, "default"))
    assert missing > 0 and client.hlen(keys.summaries(RUN)) > 0
    client.hdel(keys.summaries(RUN), *client.hkeys(keys.summaries(RUN))[:5])  # and five summaries lost

    again = run_chatlens("produce", str(data), "--run", RUN, "--batch-size", "16", env=env)
    assert again.returncode == 0, again.stderr
    assert f"re-sent: messages for classification {missing} for default" in again.stdout, again.stdout
    worked = run_chatlens("worker", "--burst", "--threads", "1", env=env)
    assert worked.returncode == 0, worked.stderr
    assert_complete(client, data)
    settled = run_chatlens("produce", str(data), "--run", RUN, "--batch-size", "16", env=env)
    assert "re-sent: messages for classification 0 for default / conversations for a summary 0" in (
        settled.stdout
    )


def test_a_followed_file_rides_out_an_outage(server: RedisServer, tmp_path: Path) -> None:
    data = sample_rows(tmp_path / "m.csv", 100)
    lines = data.read_text().splitlines(keepends=True)
    followed = tmp_path / "live.csv"
    followed.write_text("".join(lines[:51]))
    env = subprocess_env(CHATLENS_REDIS_URL=server.url, CHATLENS_SUMMARISE="false")
    proc = producer([str(followed), "--follow", "--run", RUN, "--flush-ms", "50"], env, tmp_path)
    client = redis.Redis.from_url(server.url)
    wait_for(lambda: client.hlen(keys.messages(RUN)) == 50)
    server.kill9()
    with followed.open("a") as handle:
        handle.write("".join(lines[51:]))
    time.sleep(2)
    server.start()
    wait_for(lambda: client.hlen(keys.messages(RUN)) == 100)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Redis is back after" in err and "read 100 / " in out and PASSWORD not in out + err
