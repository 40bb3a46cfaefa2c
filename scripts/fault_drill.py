"""Fault drill: a real run under worker kills (kill -9) or redis-server restarts, then the checks.

It starts its own redis-server (AOF on, free port, temp dir), produces an N-message file with summaries
on, starts K workers (`python -m worker --threads 1`), and either kill -9's a random busy worker at
random moments (starting a replacement each time) or restarts redis-server mid-run the way an operator
or docker-compose does (SIGTERM: redis-server SHUTDOWNs and flushes its AOF; `--redis-kill9` instead
kills it, losing up to the last second of writes with `appendfsync everysec`). The run counts as drained
once no chatlens job is left queued, started or scheduled, by its status, so a job stranded outside
every queue keeps the drill waiting for the workers' stranded-job sweep. Then it checks: one result
per message and model, no errors, one summary per conversation, no job left failed or started, and
how often a job ran more than once; and per kill, how long until the killed worker's batch was started
again by another worker.

    DATA=../shared/data/topical-chat-sample
    .venv/bin/python scripts/fault_drill.py --file $DATA/test.csv --kills 20
    .venv/bin/python scripts/fault_drill.py --file $DATA/test.csv --redis-restarts 2 --redis-kill9
    .venv/bin/python scripts/fault_drill.py --file $DATA/test.csv --sentinel   # scripts/sentinel_drill.py
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis
from rq import Queue
from rq.utils import as_text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chatlens.core import keys  # noqa: E402
from chatlens.core import queues as q  # noqa: E402
from tests.redis_harness import durable_server  # noqa: E402

RUN = "fault-drill"


def write_messages(source: Path, n: int, out: Path) -> int:
    """The first `n` rows of `source` with distinct non-empty text (the producer drops duplicates)."""
    seen: set[str] = set()
    with source.open(newline="") as f, out.open("w", newline="") as g:
        reader = csv.DictReader(f)
        writer = csv.DictWriter(g, fieldnames=["conversation_id", "message", "sentiment"])
        writer.writeheader()
        for row in reader:
            text = row["message"].strip()
            if text and text not in seen:
                seen.add(text)
                writer.writerow({k: row[k] for k in ("conversation_id", "message", "sentiment")})
                if len(seen) == n:
                    break
    return len(seen)


class Workers:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env, self.log_dir, self.started = env, log_dir, 0
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self) -> str:
        self.started += 1
        name = f"drill-w{self.started}"
        log = (self.log_dir / f"{name}.log").open("w")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "worker", "--threads", "1", "--name", name],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
            # Its own process group, which the kill below takes down whole. A worker is one process: jobs run
            # in it (SimpleWorker) and retries are scheduled by a thread of it (worker/scheduling.py), not
            # by rq's forked scheduler, so the kill leaves no child behind to hold a scheduler lock.
            start_new_session=True,
        )  # fmt: skip
        return name

    def alive(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is None]

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()


def chatlens_queues(client: redis.Redis) -> list[Queue]:
    return [
        Queue(n, connection=client, serializer=q.SERIALIZER)
        for n in sorted(x.name for x in Queue.all(connection=client))
        if n.startswith((q.CLASSIFY_PREFIX, q.SUMMARISE_PREFIX))
    ]


def held_jobs(client: redis.Redis, worker: str) -> list[str]:
    """The job ids whose running execution belongs to `worker`."""
    held = []
    for queue in chatlens_queues(client):
        entries: list[bytes] = client.zrange(queue.started_job_registry.key, 0, -1)  # type: ignore[assignment]
        for raw in entries:
            entry = as_text(raw)
            if client.hget(f"rq:execution:{entry}", "worker_name") == worker.encode():
                held.append(entry.split(":", 1)[0])
    return held


def restarted_at(client: redis.Redis, job_id: str, killed: str) -> float | None:
    """When another worker started `job_id` again (its job hash names the worker of its latest start)."""
    worker, started = client.hmget(f"rq:job:{job_id}", "worker_name", "started_at")
    if worker and as_text(worker) != killed and started:
        from rq.utils import utcparse

        return utcparse(as_text(started)).timestamp()
    return None


def watch_recoveries(client: redis.Redis, kills: list[dict]) -> None:
    for kill in kills:
        if kill["recovered_s"] is None:
            times = [restarted_at(client, j, kill["worker"]) for j in kill["jobs"]]
            if all(t is not None for t in times):
                kill["recovered_s"] = round(max(t for t in times if t is not None) - kill["at"], 2)


def pending(client: redis.Redis) -> int:
    # Raw counts: len() of an RQ registry runs RQ's own cleanup, which would move an expired job onto
    # its retry backoff and the back of its queue, ahead of the workers' reclaim being measured here.
    total = 0
    for queue in chatlens_queues(client):
        total += client.llen(queue.key)
        total += client.zcard(queue.started_job_registry.key) + client.zcard(queue.scheduled_job_registry.key)
    return total


def unfinished(client: redis.Redis) -> int:
    """Chatlens jobs whose status says they will still run, wherever they are (or are not) listed."""
    count = 0
    keys_ = [k for k in client.scan_iter(match="rq:job:*", count=1000) if k.count(b":") == 2]
    for i in range(0, len(keys_), 1000):
        with client.pipeline(transaction=False) as pipe:
            for key in keys_[i : i + 1000]:
                pipe.hmget(key, "status", "origin")
            for status, origin in pipe.execute():
                if origin and as_text(origin).startswith((q.CLASSIFY_PREFIX, q.SUMMARISE_PREFIX)):
                    count += as_text(status or b"") in ("queued", "started", "scheduled")
    return count


def main() -> None:
    if "--sentinel" in sys.argv[1:]:  # a primary, a replica and three sentinels: its own module
        import sentinel_drill

        sentinel_drill.main(sys.argv[1:])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path, required=True)
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--kills", type=int, default=0)
    ap.add_argument("--redis-restarts", type=int, default=0)
    ap.add_argument("--redis-kill9", action="store_true", help="restart Redis with kill -9, not SIGTERM")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=1800.0, help="give up waiting for the drain")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="chatlens-drill-"))
    server = durable_server(tmp)
    url = server.url
    client = redis.Redis.from_url(url)
    env = {**os.environ, "CHATLENS_REDIS_URL": url, "CHATLENS_SUMMARISE": "true"}
    data = tmp / "messages.csv"
    wanted = write_messages(args.file, args.messages, data)
    workers = Workers(env, tmp)
    for _ in range(args.workers):
        workers.start()
    t0 = time.time()
    produced = subprocess.run(
        [sys.executable, "-m", "chatlens.cli.app", "produce", str(data), "--run", RUN],
        env=env, cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if produced.returncode != 0:
        raise SystemExit(f"produce failed: {produced.stdout[-500:]} {produced.stderr[-500:]}")
    messages = client.hlen(keys.messages(RUN))
    conversations = len({row["conversation_id"] for row in csv.DictReader(data.open(newline=""))})
    print(
        f"produced {messages} messages ({wanted} in the file), {conversations} conversations; logs in {tmp}"
    )

    kills: list[dict] = []
    restarts: list[float] = []
    restart_marks = [(i + 1) / (args.redis_restarts + 1) for i in range(args.redis_restarts)]
    total_jobs = pending(client)
    while time.time() - t0 < args.timeout:
        try:
            left = pending(client)
            watch_recoveries(client, kills)
        except redis.ConnectionError:
            time.sleep(0.5)
            continue
        if left == 0:
            if unfinished(client) == 0:
                break
            time.sleep(5.0)  # a stranded job: the workers' sweep should put it back
            continue
        if len(kills) < args.kills:
            time.sleep(rng.uniform(1.0, 4.0))
            busy = [(n, held_jobs(client, n)) for n in workers.alive()]
            busy = [(n, jobs) for n, jobs in busy if jobs]
            if busy:
                name, jobs = rng.choice(busy)
                os.killpg(workers.procs[name].pid, signal.SIGKILL)
                kills.append({"worker": name, "at": time.time(), "jobs": jobs, "recovered_s": None})
                print(f"kill -9 {name} holding {jobs}", flush=True)
                workers.start()
        elif restart_marks and 1 - left / max(total_jobs, 1) >= restart_marks[0]:
            restart_marks.pop(0)
            # SIGTERM is what an operator's restart or docker-compose sends: SHUTDOWN, the AOF is flushed.
            server.kill9() if args.redis_kill9 else server.stop()
            time.sleep(3.0)
            restarts.append(time.time())
            print(f"redis-server restarted at {left} jobs left", flush=True)
            server.start()
        else:
            time.sleep(0.5)
    total_s = time.time() - t0
    watch_recoveries(client, kills)
    alive_workers = len(workers.alive())
    workers.stop_all()
    figures = check(client, messages, conversations, tmp)
    restart = "redis-kill9s" if args.redis_kill9 else "redis-restarts"
    figures.update(
        mode=f"kills={args.kills}" if args.kills else f"{restart}={args.redis_restarts}",
        workers=args.workers, kills=len(kills), redis_restarts=len(restarts),
        workers_alive_at_end=alive_workers, total_s=round(total_s, 1),
    )  # fmt: skip
    recovered = [k["recovered_s"] for k in kills if k["recovered_s"] is not None]
    figures["kills_not_recovered"] = len(kills) - len(recovered)
    figures["recovery_max_s"] = max(recovered) if recovered else None
    figures["recovery_median_s"] = round(statistics.median(recovered), 2) if recovered else None
    server.stop()
    if args.json:
        print(json.dumps({**figures, "kill_detail": kills}, indent=2))
    else:
        for key, value in figures.items():
            print(f"{key:28s} {value}")


def check(client: redis.Redis, messages: int, conversations: int, tmp: Path) -> dict:
    models = sorted(as_text(m) for m in client.smembers(keys.models(RUN)))
    figures: dict = {"messages": messages, "conversations": conversations, "models": ",".join(models)}
    message_ids = set(client.hkeys(keys.messages(RUN)))
    lost = 0 if models else messages
    duplicated = 0
    for model in models:
        results = set(client.hkeys(keys.results(RUN, model)))
        errors = set(client.hkeys(keys.errors(RUN, model)))
        figures[f"results[{model}]"] = len(results)
        figures[f"errors[{model}]"] = len(errors)
        lost += len(message_ids - results - errors)
        # More than one record for a message: a result and an error, or a record for an unknown id.
        duplicated += len(results & errors) + len((results | errors) - message_ids)
    summaries = client.hlen(keys.summaries(RUN))
    figures["summaries"] = summaries
    figures["summary_errors"] = client.hlen(keys.summary_errors(RUN))
    figures["lost"] = lost + max(0, conversations - summaries)
    # HSET per message id: a second result for a message overwrites the first, so what can happen twice
    # is a job's execution: counted from RQ's per-job results stream (one entry per successful run).
    figures["duplicated"] = duplicated + max(0, summaries - conversations)
    failed = started = jobs = executions = 0
    for queue in chatlens_queues(client):
        failed += client.zcard(queue.failed_job_registry.key)
        started += client.zcard(queue.started_job_registry.key)
        for job_id in queue.finished_job_registry.get_job_ids():
            jobs += 1
            executions += client.xlen(f"rq:results:{job_id}")
    figures.update(failed_jobs=failed, started_jobs_left=started)
    figures.update(finished_jobs=jobs, successful_executions=executions, re_executions=executions - jobs)
    logs = [p.read_text(errors="replace") for p in tmp.glob("drill-w*.log")]
    figures["reclaimed_jobs"] = sum(text.count("reclaimed job") for text in logs)
    figures["stranded_requeued"] = sum(
        int(m.group(1)) for text in logs for m in re.finditer(r"stranded-job sweep: re-enqueued (\d+)", text)
    )
    figures["unfinished_jobs_left"] = unfinished(client)
    return figures


if __name__ == "__main__":
    main()
