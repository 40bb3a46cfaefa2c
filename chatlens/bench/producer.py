"""Producer figures for `chatlens bench`: messages/s from a JSONL file into Redis (summaries off and on),
and the peak RSS of a `chatlens produce` process on the same file.

The rate is timed in-process from the first row read to the last pipeline written (interpreter start
and imports are not the producer's throughput); the peak RSS is a separate `chatlens produce` process's
own, read from getrusage of its children once it exits.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from redis import Redis

from chatlens.core.errors import ChatlensError
from chatlens.core.settings import Settings


def write_stream_file(texts: list[str], count: int, path: Path, turns: int = 20) -> Path:
    """`count` JSONL rows cycling through `texts`, in conversations of `turns` messages, every row new."""
    labels = ["Happy", "Neutral", "Curious to dive deeper", "Surprised"]
    with path.open("w", encoding="utf-8") as handle:
        for i in range(count):
            row = {
                "conversation_id": f"c{i // turns}",
                "message": f"{texts[i % len(texts)]} #{i}",
                "sentiment": labels[i % len(labels)],
            }
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def produce_rate(settings: Settings, connection: Redis, url: str, path: Path, summarise: bool) -> dict:
    from producer.pipeline import produce_input

    run = f"bench-producer-{time.time_ns()}"
    chosen = settings.model_copy(update={"summarise": summarise, "max_queued": 10**9})
    redis_cpu = _redis_cpu_s(connection)
    cpu = time.process_time()
    started = time.perf_counter()
    counts = produce_input(chosen, path, run, redis_url=url, warn_idle_queues=False)
    elapsed = time.perf_counter() - started
    # On a shared machine the wall clock also counts other people's processes: the CPU seconds of the
    # producer and of redis-server are the cost of the work itself.
    cpu = time.process_time() - cpu
    redis_cpu = _redis_cpu_s(connection) - redis_cpu
    _clear_queues(connection)
    return {
        "messages": counts.enqueued,
        "seconds": round(elapsed, 2),
        "msgs_per_s": counts.enqueued / elapsed,
        "producer_cpu_s": round(cpu, 2),
        "redis_cpu_s": round(redis_cpu, 2),
        "msgs_per_cpu_s": counts.enqueued / (cpu + redis_cpu),
    }


def _redis_cpu_s(connection: Redis) -> float:
    info = connection.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def produce_peak_rss_mb(url: str, path: Path) -> float:
    """Peak RSS of `chatlens produce FILE` in its own process (summaries off)."""
    env = {
        **os.environ,
        "CHATLENS_REDIS_URL": url,
        "CHATLENS_SUMMARISE": "false",
        "CHATLENS_MAX_QUEUED": str(10**9),
    }
    run = f"bench-rss-{time.time_ns()}"
    command = [sys.executable, "-m", "chatlens.cli.app", "produce", str(path), "--run", run]
    # GNU time reports the process's own peak. getrusage(RUSAGE_CHILDREN) does not do here: a child
    # forked from this process (torch loaded) is charged this process's pages until it execs.
    done = subprocess.run(
        ["/usr/bin/time", "-v", *command],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    peak_kb = int(found.group(1)) if found else float("nan")
    from chatlens.core.connection import connect

    _clear_queues(connect(url))
    return peak_kb / 1024


def _clear_queues(connection: Redis) -> None:
    """The benchmark's jobs are never run; its Redis is a private one (`RedisServer`): emptied."""
    connection.flushdb()


def run_producer_bench(settings: Settings, url: str, texts: list[str], count: int, repeat: int = 2) -> dict:
    from chatlens.core.connection import connect

    connection = connect(url)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_stream_file(texts, count, Path(tmp) / "messages.jsonl")
        rss = produce_peak_rss_mb(url, path)
        off = [produce_rate(settings, connection, url, path, summarise=False) for _ in range(repeat)]
        on = [produce_rate(settings, connection, url, path, summarise=True) for _ in range(repeat)]
    short = [r["messages"] for r in off + on if r["messages"] != count]
    if short:
        # Every row of the file is new; a round that enqueued fewer timed other work than it claims.
        raise ChatlensError(f"the producer enqueued {short[0]} of {count} messages in a round; no figures")
    return {
        "producer_messages": count,
        "producer_msgs_per_s": round(max(r["msgs_per_s"] for r in off), 1),
        "producer_msgs_per_s_summaries_on": round(max(r["msgs_per_s"] for r in on), 1),
        "producer_msgs_per_cpu_s": round(max(r["msgs_per_cpu_s"] for r in off), 1),
        "producer_peak_rss_mb": round(rss, 1),
        "producer_all_rounds_msgs_per_s": {
            "summaries_off": [round(r["msgs_per_s"], 1) for r in off],
            "summaries_on": [round(r["msgs_per_s"], 1) for r in on],
            "summaries_off_cpu_s": [[r["producer_cpu_s"], r["redis_cpu_s"]] for r in off],
        },
    }
