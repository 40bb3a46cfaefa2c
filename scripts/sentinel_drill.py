"""`scripts/fault_drill.py --sentinel`: a primary, a replica and three sentinels (chatlens.bench.
redis_sentinel), N messages streamed on stdin at a steady rate into `chatlens produce -` with K workers;
the primary is killed with -9 during the stream, and the new primary after the stream has ended, each
dead node brought back as a replica once the sentinels have elected another.

It reports messages acknowledged by the producer (its count line: enqueued + already-present, counted
only once WAIT said the replica had them) against messages stored, results per model, summaries against
conversations, failed jobs, each failover's seconds (kill to every sentinel naming a new primary that
answers as one) and how long until the stored count grew again, the drain after the stream, and the
producer's exit code.

    .venv/bin/python scripts/fault_drill.py --sentinel --file ../shared/data/topical-chat-sample/test.csv

`--wait-cost` instead measures what WAIT costs the producer: the same file produced (no workers, no
summaries) into the same group with WAIT (the default: the one replica) and without
(CHATLENS_REDIS_WAIT_REPLICAS=0), alternately, `--repeat` times each.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis
from fault_drill import ROOT, RUN, Workers, check, pending, unfinished

from chatlens.bench.redis_sentinel import SentinelGroup
from chatlens.core import keys
from chatlens.core.connection import connect

PASSWORD = "drill-Pa55word"


def stream_rows(file: Path, n: int) -> list[dict[str, str]]:
    """The first `n` rows of `file` with distinct non-empty text (the producer drops duplicates)."""
    seen: set[str] = set()
    rows = []
    with file.open(newline="") as f:
        for row in csv.DictReader(f):
            text = row["message"].strip()
            if text and text not in seen:
                seen.add(text)
                rows.append({k: row[k] for k in ("conversation_id", "message", "sentiment")})
                if len(rows) == n:
                    break
    return rows


class Feeder(threading.Thread):
    """Writes `rows` as JSON lines to the producer's stdin at `rate` a second, then closes it."""

    def __init__(self, producer: subprocess.Popen[str], rows: list[dict[str, str]], rate: float) -> None:
        super().__init__(daemon=True)
        self.producer, self.rows, self.rate = producer, rows, rate
        self.sent = 0
        self.done = threading.Event()

    def run(self) -> None:
        stdin = self.producer.stdin
        assert stdin is not None
        started = time.monotonic()
        try:
            for i, row in enumerate(self.rows):
                delay = started + i / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                stdin.write(json.dumps(row) + "\n")
                stdin.flush()
                self.sent += 1
            stdin.close()
        except BrokenPipeError:  # the producer died: its exit code says so
            pass
        finally:
            self.done.set()


def stored(client: redis.Redis) -> int:
    try:
        return int(client.hlen(keys.messages(RUN)))
    except redis.RedisError:  # mid-failover: unknown for now
        return -1


class Sampler(threading.Thread):
    """(time, messages stored, results of the default model) every 0.2 s: when writes went on again."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.samples: list[tuple[float, int, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                with self.client.pipeline(transaction=False) as pipe:
                    pipe.hlen(keys.messages(RUN))
                    pipe.hlen(keys.results(RUN, "default"))
                    messages, results = pipe.execute()
            except redis.RedisError:
                continue
            self.samples.append((time.monotonic(), int(messages), int(results)))

    def resumed_s(self, killed_at: float) -> float | None:
        """Seconds from `killed_at` until messages or results grew past what they were at the kill."""
        before = [s for s in self.samples if s[0] <= killed_at]
        if not before:
            return None
        _, messages, results = before[-1]
        for t, m, r in self.samples:
            if t > killed_at and (m > messages or r > results):
                return round(t - killed_at, 2)
        return None


def fail_over(group: SentinelGroup, what: str) -> dict[str, float | str]:
    """Kill the primary with -9, wait for the new one, bring the dead node back as its replica."""
    killed_at = time.monotonic()
    old = group.kill_primary()
    print(f"kill -9 primary :{old.port} ({what})", flush=True)
    failover_s = group.wait_for_failover(old.port)
    print(f"  sentinels named :{group.primary().port} after {failover_s:.2f} s", flush=True)
    time.sleep(2.0)
    group.revive(old)
    print(f"  :{old.port} back as a replica", flush=True)
    return {"what": what, "failover_s": round(failover_s, 2), "killed_at": killed_at}


def wait_cost(file: Path, messages: int, repeat: int) -> None:
    from chatlens.core.settings import Settings
    from producer.pipeline import produce_input

    tmp = Path(tempfile.mkdtemp(prefix="chatlens-wait-cost-"))
    data = tmp / "messages.csv"
    with data.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["conversation_id", "message", "sentiment"])
        writer.writeheader()
        writer.writerows(stream_rows(file, messages))
    timings: dict[str, list[float]] = {"wait": [], "no-wait": []}
    with SentinelGroup(tmp / "redis", password=PASSWORD) as group:
        for i in range(repeat):
            for mode, replicas in (("wait", None), ("no-wait", 0)):
                settings = Settings(redis_url=group.url, summarise=False, redis_wait_replicas=replicas)
                started = time.perf_counter()
                counts = produce_input(settings, data, f"cost-{mode}-{i}", warn_idle_queues=False)
                timings[mode].append(time.perf_counter() - started)
                assert counts.enqueued == messages, counts
                connect(group.url).flushdb()
    for mode, seconds in timings.items():
        best = min(seconds)
        every = [round(x, 2) for x in seconds]
        print(f"{mode:8s} best {best:.2f} s ({messages / best:,.0f} msg/s), all {every}")


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentinel", action="store_true")
    ap.add_argument("--file", type=Path, required=True)
    ap.add_argument("--messages", type=int, default=6_000)
    ap.add_argument("--rate", type=float, default=300.0, help="messages a second on stdin")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kill-at", type=float, default=0.4, help="share of the stream sent at the first kill")
    ap.add_argument("--timeout", type=float, default=1800.0, help="give up waiting for the drain")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--wait-cost", action="store_true", help="measure WAIT's cost to the producer instead")
    ap.add_argument("--repeat", type=int, default=3, help="with --wait-cost: runs of each")
    args = ap.parse_args(argv)
    if args.wait_cost:
        wait_cost(args.file, args.messages, args.repeat)
        return
    tmp = Path(tempfile.mkdtemp(prefix="chatlens-sentinel-drill-"))
    rows = stream_rows(args.file, args.messages)
    conversations = len({r["conversation_id"] for r in rows})
    with SentinelGroup(tmp / "redis", password=PASSWORD) as group:
        url = group.url
        client = connect(url)
        env = {**os.environ, "CHATLENS_REDIS_URL": url, "CHATLENS_SUMMARISE": "true"}
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        workers = Workers(env, tmp)
        for _ in range(args.workers):
            workers.start()
        producer_log = (tmp / "producer.log").open("w")
        producer = subprocess.Popen(
            [sys.executable, "-m", "chatlens.cli.app", "produce", "-", "--run", RUN],
            env=env, cwd=ROOT, text=True,
            stdin=subprocess.PIPE, stdout=producer_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        print(
            f"streaming {len(rows)} messages at {args.rate:g}/s, {conversations} conversations; logs in {tmp}"
        )
        sampler = Sampler(connect(url))
        sampler.start()
        feeder = Feeder(producer, rows, args.rate)
        t0 = time.monotonic()
        feeder.start()
        failovers = []
        while not feeder.done.is_set() and feeder.sent < args.kill_at * len(rows):
            time.sleep(0.05)
        failovers.append(fail_over(group, f"during the stream, {feeder.sent} sent"))
        feeder.join()
        code = producer.wait(timeout=args.timeout)
        stream_end = time.monotonic()
        print(f"stream ended after {stream_end - t0:.1f} s; producer exit {code}", flush=True)
        time.sleep(3.0)  # the workers are busy draining: the second kill lands mid-drain
        failovers.append(fail_over(group, "after the stream"))
        while time.monotonic() - stream_end < args.timeout:
            try:
                if pending(client) == 0 and unfinished(client) == 0:
                    break
            except redis.RedisError:  # a failover under way: ask again
                pass
            time.sleep(2.0)
        drain_s = time.monotonic() - stream_end
        sampler.stop.set()
        alive = len(workers.alive())
        workers.stop_all()
        producer_log.close()
        said = (tmp / "producer.log").read_text(errors="replace")
        counted = re.search(r"enqueued (\d+) / already-present (\d+)", said)
        acknowledged = int(counted.group(1)) + int(counted.group(2)) if counted else 0
        figures = check(client, stored(client), conversations, tmp)
        figures = {
            "messages_streamed": len(rows),
            "messages_acknowledged": acknowledged,
            "messages_stored": stored(client),
            "acknowledged_lost": max(0, acknowledged - stored(client)),
            **figures,
            "failovers_s": [f["failover_s"] for f in failovers],
            "writes_resumed_s": [sampler.resumed_s(float(f["killed_at"])) for f in failovers],
            "drain_after_stream_s": round(drain_s, 1),
            "producer_exit": code,
            "producer_said": said.strip().splitlines()[-1] if said.strip() else "",
            "workers_alive_at_end": alive,
        }
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:28s} {value}")
