"""Producer outage drill: a redis-server (AOF everysec, a password) killed with -9 under `chatlens produce`.

- `kill` (file, then stdin): the producer waits on back-pressure with no worker when Redis is killed and
  stays down past CHATLENS_REDIS_OUTAGE_S; the producer's last line is checked (exit 3, no traceback, the
  password masked), Redis is started again, the resume command the line printed is run as printed (the
  same input piped again for stdin), then one `chatlens worker --burst`.
- `ride`: rows piped at about 300 rows/s; Redis is killed mid-stream and started again 3 s later; the
  producer must ride it out (exit 0), then one `chatlens worker --burst`.

Each ends with what is missing: messages (of the input's clean rows), results and summaries.

    .venv/bin/python scripts/producer_outage_drill.py --file ../shared/data/topical-chat-sample/test.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatlens.core import keys  # noqa: E402
from tests.redis_harness import RedisServer  # noqa: E402

CHATLENS = [sys.executable, "-m", "chatlens.cli.app"]
PASSWORD = "drill-pw!s3cret"


def write_messages(source: Path, n: int, out: Path) -> list[dict]:
    """The first `n` rows of `source` with distinct non-empty text (the producer drops duplicates)."""
    seen: set[str] = set()
    rows = []
    with source.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["message"].strip() and row["message"] not in seen and len(rows) < n:
                seen.add(row["message"])
                rows.append({k: row[k] for k in ("conversation_id", "message", "sentiment")})
    with out.open("w", newline="") as g:
        writer = csv.DictWriter(g, fieldnames=["conversation_id", "message", "sentiment"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def say(mode: str, line: str) -> None:
    print(f"[{mode}] {line}", flush=True)


def finish(mode: str, env: dict[str, str], client: redis.Redis, run: str, rows: list[dict]) -> None:
    started = time.time()
    worked = subprocess.run([*CHATLENS, "worker", "--burst", "--threads", "1"], env=env, capture_output=True)
    say(mode, f"burst worker: exit {worked.returncode} in {time.time() - started:.1f} s")
    messages = client.hlen(keys.messages(run))
    answered = client.hlen(keys.results(run, "default")) + client.hlen(keys.errors(run, "default"))
    conversations = len({r["conversation_id"] for r in rows})
    summaries = client.hlen(keys.summaries(run))
    say(
        mode,
        f"messages {messages}/{len(rows)}, results+errors {answered}, summaries {summaries}/{conversations}; "
        f"missing: messages {len(rows) - messages}, results {messages - answered}, "
        f"summaries {conversations - summaries}",
    )


def kill(mode: str, data: Path, rows: list[dict], outage_s: int) -> None:
    run = f"drill-{mode}"
    with RedisServer(password=PASSWORD, aof=True) as server:
        env = {**os.environ, "CHATLENS_REDIS_URL": server.url, "CHATLENS_REDIS_OUTAGE_S": str(outage_s)}
        stdin = mode == "stdin"
        command = [*CHATLENS, "produce", "-" if stdin else str(data), "--run", run]
        # No worker, a bound of 20 jobs of 8: the producer is waiting on back-pressure when Redis dies.
        small = {**env, "CHATLENS_MAX_QUEUED": "20", "CHATLENS_BATCH_SIZE": "8"}
        producer = subprocess.Popen(
            command, env=small, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        text = data.read_text()
        if stdin:
            assert producer.stdin is not None
            producer.stdin.write(text)
            producer.stdin.flush()
        client = redis.Redis.from_url(server.url)
        while client.llen("rq:queue:classify-default") < 20:
            time.sleep(0.1)
        server.kill9()
        killed = time.time()
        out, err = producer.communicate(timeout=outage_s + 120)
        last = err.strip().splitlines()[-1]
        took = time.time() - killed
        say(mode, f"producer: exit {producer.returncode} {took:.1f} s after the kill; last line:")
        say(mode, f"  {last}")
        say(mode, f"password shown: {PASSWORD in out + err}; traceback: {'Traceback' in out + err}")
        server.start()
        registered = client.zscore(keys.RUNS, run) is not None
        stored = client.hlen(keys.messages(run))
        say(mode, f"after the restart: {stored} stored, run registered: {registered}")
        resume = last.split("skipped): ", 1)[1].split(" | ", 1)[-1]
        started = time.time()
        again = subprocess.run(
            [*CHATLENS, *shlex.split(resume)[1:]], env=env, text=True, capture_output=True,
            input=text if stdin else None,
        )  # fmt: skip
        say(mode, f"resume: exit {again.returncode} in {time.time() - started:.1f} s")
        for line in again.stdout.strip().splitlines():
            say(mode, f"  {line}")
        finish(mode, env, client, run, rows)


def ride(data: Path, rows: list[dict]) -> None:
    run, mode = "drill-ride", "ride"
    lines = data.read_text().splitlines(keepends=True)
    with RedisServer(password=PASSWORD, aof=True) as server:
        env = {**os.environ, "CHATLENS_REDIS_URL": server.url}
        producer = subprocess.Popen(
            [*CHATLENS, "produce", "-", "--run", run], env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert producer.stdin is not None
        client = redis.Redis.from_url(server.url)

        def outage() -> None:
            before = client.hlen(keys.messages(run))
            server.kill9()
            time.sleep(3)
            server.start()
            after = client.hlen(keys.messages(run))
            say(mode, f"killed -9 with {before} stored; {after} after the AOF replay")

        killer = threading.Thread(target=outage)
        for number, line in enumerate(lines):
            producer.stdin.write(line)
            if number % 30 == 0:
                producer.stdin.flush()
                time.sleep(0.1)
            if number == len(lines) // 3:
                killer.start()
        killer.join()
        out, err = producer.communicate(timeout=300)
        say(mode, f"producer: exit {producer.returncode}; password shown: {PASSWORD in out + err}")
        for line in [*out.strip().splitlines(), *err.strip().splitlines()]:
            say(mode, f"  {line}")
        finish(mode, env, client, run, rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path, required=True)
    ap.add_argument("--messages", type=int, default=3_000)
    ap.add_argument("--outage-s", type=int, default=10, help="CHATLENS_REDIS_OUTAGE_S of the kill modes")
    ap.add_argument("--modes", default="file,stdin,ride")
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="chatlens-outage-")) / "messages.csv"
    rows = write_messages(args.file, args.messages, data)
    for mode in args.modes.split(","):
        ride(data, rows) if mode == "ride" else kill(mode, data, rows, args.outage_s)


if __name__ == "__main__":
    main()
