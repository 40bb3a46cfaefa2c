"""`gather_status`: every figure `chatlens status` shows, read from Redis in one pass, as plain data.

The same dictionary is the `--json` output, what the rich screen draws and what the Prometheus exporter
turns into gauges, so the three never disagree. Its keys are a documented interface
(docs/reference/status.md): add keys, never rename them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq import Queue, Worker
from rq.job import Job

from chatlens.core import keys
from chatlens.core import queues as q
from chatlens.core.failed import failed_by_run, known_queues
from chatlens.core.schemas import LastEval, RunInfo
from chatlens.core.settings import Settings
from chatlens.core.store import RunStore

SCHEMA_VERSION = 1
UNSUMMARISED_SHOWN = 20  # conversation ids listed in `unsummarised_ids` (the count is whole)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _oldest_age_s(queue: Queue, now: float) -> float | None:
    ids = queue.get_job_ids(0, 1)
    if not ids:
        return None
    enqueued = queue.connection.hget(Job.key_for(ids[0]), "enqueued_at")
    if not enqueued:
        return None
    at = datetime.fromisoformat(_text(enqueued).replace("Z", "+00:00"))
    return round(max(0.0, now - at.replace(tzinfo=at.tzinfo or UTC).timestamp()), 1)


def _queues(connection: Redis, settings: Settings, now: float) -> tuple[list[dict], dict[str, int]]:
    rows: list[dict] = []
    failed_counts: dict[str, int] = {}
    for name in known_queues(connection, settings):
        queue = Queue(name, connection=connection, serializer=q.SERIALIZER)
        for run, ids in failed_by_run(connection, name).items():
            failed_counts[run] = failed_counts.get(run, 0) + len(ids)
        rows.append(
            {
                "name": name,
                "depth": queue.count,
                "oldest_age_s": _oldest_age_s(queue, now),
                "started": queue.started_job_registry.count,
                "failed": queue.failed_job_registry.count,
                "workers": 0,  # filled in from the workers below
            }
        )
    return rows, failed_counts


def _workers(connection: Redis, now: float) -> list[dict]:
    peak_rss = {_text(k): float(v) for k, v in connection.hgetall(keys.WORKER_PEAK_RSS).items()}
    loads: dict[str, dict[str, int]] = {}
    for field, value in connection.hgetall(keys.MODEL_LOADS).items():
        host, pid, model = _text(field).split(":", 2)
        loads.setdefault(f"{host}:{pid}", {})[model] = int(value)
    rows: list[dict] = []
    for worker in sorted(Worker.all(connection=connection, serializer=q.SERIALIZER), key=lambda w: w.name):
        process = f"{worker.hostname}:{worker.pid}"
        heartbeat = worker.last_heartbeat
        rows.append(
            {
                "name": worker.name,
                "host": worker.hostname,
                "pid": worker.pid,
                "queues": worker.queue_names(),
                "state": worker.get_state(),
                "current_job": worker.get_current_job_id(),
                "last_heartbeat": heartbeat.replace(tzinfo=UTC).isoformat() if heartbeat else None,
                "heartbeat_age_s": round(now - heartbeat.replace(tzinfo=UTC).timestamp(), 1)
                if heartbeat
                else None,
                "jobs_done": worker.successful_job_count,
                "jobs_failed": worker.failed_job_count,
                "peak_rss_mb": peak_rss.get(process),
                "models": loads.get(process, {}),
            }
        )
    return rows


def _per_s(connection: Redis, key: str, now: float) -> float:
    """Events counted in the per-minute hash `key` over the last 60 s: this minute's bucket plus the
    share of the previous minute's bucket that falls inside the window (spread evenly over its minute)."""
    minute = int(now) // 60
    current, previous = connection.hmget(key, [str(minute), str(minute - 1)])
    into_minute = now - minute * 60
    total = int(current or 0) + int(previous or 0) * (60 - into_minute) / 60
    return round(total / 60, 3)


def messages_per_s(connection: Redis, run: str, now: float) -> float:
    """Messages classified (a result or an error) per second over the last 60 s."""
    return _per_s(connection, keys.throughput(run), now)


def summaries_per_s(connection: Redis, run: str, now: float) -> float:
    """Conversations answered (a summary or its error) per second over the last 60 s."""
    return _per_s(connection, keys.summary_throughput(run), now)


def _working(workers: list[dict], prefix: str, settings: Settings) -> bool:
    """Whether a live worker serves a queue of this kind (`classify-`, `summarise-`) and beat lately. A
    busy worker beats every `heartbeat_interval_s`; one killed stays registered until its key expires,
    which must not keep an ETA alive."""
    fresh = 3 * settings.heartbeat_interval_s + 5
    return any(
        any(name.startswith(prefix) for name in w["queues"])
        and w["heartbeat_age_s"] is not None
        and w["heartbeat_age_s"] <= fresh
        for w in workers
    )


def _eta(remaining: int, rate: float, moving: bool) -> float | None:
    if not remaining:
        return 0.0
    return round(remaining / rate, 1) if moving and rate > 0 else None


def _summaries_expected(info: RunInfo | None, answered: int) -> bool:
    if info is not None and info.summaries is not None:
        return info.summaries
    return answered > 0  # a run recorded before RunInfo said: expected once any was written


def _run(
    connection: Redis,
    settings: Settings,
    store: RunStore,
    run: str,
    failed_by_run: dict[str, int],
    workers: list[dict],
    now: float,
) -> dict:
    info = store.run_info(run)
    messages = store.message_count(run)
    models: dict[str, dict[str, int]] = {}
    for model in store.models(run):
        models[model] = {
            "done": store.result_count(run, model),
            "errors": store.error_count(run, model),
            "total": messages,
        }
    remaining = sum(max(0, m["total"] - m["done"] - m["errors"]) for m in models.values())
    # A classifier the producer enqueued for that has written nothing yet still has every message to do.
    remaining += sum(messages for name in (info.classifiers if info else []) if name not in models)
    written, summary_errors = store.summary_count(run), int(connection.hlen(keys.summary_errors(run)))
    expects = _summaries_expected(info, written + summary_errors)
    conversations = store.conversation_count(run)
    unsummarised = store.unsummarised(run) if expects else []
    rate, summary_rate = messages_per_s(connection, run, now), summaries_per_s(connection, run, now)
    eta_classify = _eta(remaining, rate, _working(workers, q.CLASSIFY_PREFIX, settings))
    eta_summaries = _eta(len(unsummarised), summary_rate, _working(workers, q.SUMMARISE_PREFIX, settings))
    # One worker usually serves both kinds, one after the other: the ETA is the sum, and unknown while
    # either kind with work left has no worker moving on it.
    eta = None if eta_classify is None or eta_summaries is None else round(eta_classify + eta_summaries, 1)
    raw_eval = connection.get(keys.last_eval(run))
    last_eval = LastEval.model_validate_json(raw_eval) if raw_eval else None
    classified = bool(models) or not (info.classifiers if info else [])
    return {
        "run": run,
        "source": info.source if info else None,
        "created_at": info.created_at.isoformat() if info else None,
        "messages": messages,
        "models": models,
        "errors": sum(m["errors"] for m in models.values()),
        "summaries": written,
        "summary_errors": summary_errors,
        "summaries_expected": conversations if expects else 0,
        "conversations": conversations,
        "unsummarised": len(unsummarised),
        "unsummarised_ids": unsummarised[:UNSUMMARISED_SHOWN],
        "failed_jobs": failed_by_run.get(run, 0),
        "messages_per_s": rate,
        "summaries_per_s": summary_rate,
        "remaining": remaining,
        "summaries_remaining": len(unsummarised),
        "eta_classify_s": eta_classify,
        "eta_summaries_s": eta_summaries,
        "eta_s": eta,
        "finished": remaining == 0 and not unsummarised and classified and (messages > 0),
        "last_eval": _eval_figures(last_eval) if last_eval else None,
    }


def _eval_figures(record: LastEval) -> dict[str, Any]:
    return {
        "evaluated_at": record.evaluated_at.isoformat(),
        "out_dir": record.out_dir,
        "models": {
            name: {k: v for k, v in figures.items() if k in ("accuracy", "macro_f1")}
            for name, figures in record.models.items()
        },
        "summaries": record.summaries,
        "regression": record.regression,
        "regressions": record.regressions,
    }


def gather_status(
    connection: Redis, settings: Settings, run: str | None = None, runs: int = 3, now: float | None = None
) -> dict[str, Any]:
    now = time.time() if now is None else now
    store = RunStore(connection, settings.result_ttl_s)
    queue_rows, failed_by_run = _queues(connection, settings, now)
    workers = _workers(connection, now)
    for row in queue_rows:
        row["workers"] = sum(1 for w in workers if row["name"] in w["queues"])
    names = [run] if run else store.recent_runs(runs)
    return {
        "schema": SCHEMA_VERSION,
        "generated_at": datetime.fromtimestamp(now, UTC).isoformat(),
        "queues": queue_rows,
        "workers": workers,
        "runs": [_run(connection, settings, store, name, failed_by_run, workers, now) for name in names],
    }
