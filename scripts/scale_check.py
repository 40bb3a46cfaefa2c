"""Scale check: produce, evaluate and export a run of N messages (default 2,000,000) within the memory
bound, and what the run costs in Redis. Prints its figures; a private redis-server, a temp directory.

    .venv/bin/python scripts/scale_check.py [--messages 2000000]

1. writes an N-row JSONL file (texts cycled from the Topical-Chat sample, every row distinct);
2. `chatlens produce FILE` (summaries off) under /usr/bin/time -v: peak RSS, wall time;
   Redis used_memory before/after and MEMORY USAGE of the messages hash: bytes per stored message, and
   per queued job;
3. the queued jobs are deleted and a result for every message is written directly with
   RunStore.write_results (Prediction records, as a worker writes them; no model runs: workers at
   ~300 msg/s could not classify 2M messages here), so `eval` and `results` have a full run to read;
4. `chatlens eval --no-mlflow` and `chatlens results -o FILE` under /usr/bin/time -v: peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from chatlens.bench.producer import write_stream_file  # noqa: E402
from chatlens.core import keys  # noqa: E402
from chatlens.core.connection import connect  # noqa: E402
from chatlens.core.schemas import Prediction  # noqa: E402
from chatlens.core.store import RunStore  # noqa: E402
from tests.redis_harness import RedisServer  # noqa: E402

SAMPLE = ROOT.parent / "shared" / "data" / "topical-chat-sample" / "train.csv"
RUN = "scale"


def timed(command: list[str], env: dict[str, str], cwd: Path) -> dict:
    """Run under /usr/bin/time -v: wall seconds and peak RSS (MB) of the command's process."""
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-v", *command], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))  # type: ignore[union-attr]
    last = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith(("read ", "wrote "))]
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "peak_rss_mb": round(peak / 1024, 1),
        "said": last,
    }


def note(figures: dict, name: str, value: object) -> None:
    """Kept and printed at once: a later step that fails leaves the earlier figures on screen."""
    figures[name] = value
    print(f"{name}: {json.dumps(value)}", file=sys.stderr, flush=True)


def write_results(url: str, run: str) -> int:
    store = RunStore(connect(url), 3600)
    written = 0
    for chunk in store.message_chunks(run):
        predictions = [
            Prediction(
                message_id=mid,
                model="default",
                model_version="scale-check",
                label=m.label or "Neutral",
                confidence=0.5,
                batch_size=64,
                batch_latency_ms=1.0,
                worker="scale_check",
            )
            for mid, m in chunk
        ]
        store.write_results(run, "default", predictions, [])
        written += len(predictions)
    return written


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2_000_000)
    args = parser.parse_args()
    texts = [line.split(",", 1)[1] for line in SAMPLE.read_text(encoding="utf-8").splitlines()[1:5001]]
    figures: dict[str, object] = {"messages": args.messages}
    with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
        url, work = server.url, Path(tmp)
        path = write_stream_file(texts, args.messages, work / "big.jsonl")
        note(figures, "file_mb", round(path.stat().st_size / 2**20, 1))
        env = {
            **os.environ,
            "CHATLENS_REDIS_URL": url,
            "CHATLENS_SUMMARISE": "false",
            "CHATLENS_MAX_QUEUED": str(10**9),  # the jobs are never run here: no worker drains them
        }
        chatlens = [sys.executable, "-m", "chatlens.cli.app"]
        connection = connect(url)
        before = int(connection.info("memory")["used_memory"])
        note(figures, "produce", timed([*chatlens, "produce", str(path), "--run", RUN], env, work))
        after_produce = int(connection.info("memory")["used_memory"])
        stored = int(connection.hlen(keys.messages(RUN)))
        messages_hash = int(connection.memory_usage(keys.messages(RUN), samples=1_000) or 0)
        note(figures, "redis_used_memory_mb_after_produce", round((after_produce - before) / 2**20, 1))
        note(figures, "redis_bytes_per_message_stored", round(messages_hash / stored, 1))
        note(figures, "redis_bytes_per_message_with_queued_jobs", round((after_produce - before) / stored, 1))
        for key in connection.scan_iter(match="rq:*", count=1_000):
            connection.unlink(key)
        after_jobs = int(connection.info("memory")["used_memory"])
        started = time.perf_counter()
        note(figures, "results_written", write_results(url, RUN))
        note(figures, "write_results_s", round(time.perf_counter() - started, 1))
        results_hash = int(connection.memory_usage(keys.results(RUN, "default"), samples=1_000) or 0)
        note(figures, "redis_bytes_per_result", round(results_hash / stored, 1))
        note(
            figures,
            "redis_used_memory_mb_run_with_results",
            round(
                (int(connection.info("memory")["used_memory"]) - before - (after_produce - after_jobs))
                / 2**20,
                1,
            ),
        )
        note(
            figures,
            "eval",
            timed([*chatlens, "eval", "--run", RUN, "--no-mlflow", "--out", str(work / "r")], env, work),
        )
        metrics = json.loads((work / "r" / "metrics.json").read_text())
        note(figures, "eval_messages", metrics["messages"])
        note(
            figures,
            "results",
            timed(
                [*chatlens, "results", "--run", RUN, "--format", "jsonl", "-o", str(work / "out.jsonl")],
                env,
                work,
            ),
        )
        with (work / "out.jsonl").open() as handle:
            note(figures, "exported", sum(1 for _ in handle))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
