"""The RQ side of producing: the options every job gets, the classify jobs of micro-batches, the run's
record, and which queues no worker serves."""

from __future__ import annotations

from datetime import UTC, datetime

from redis import Redis
from redis.client import Pipeline
from rq import Queue, Retry, Worker

from chatlens.core import keys, queues
from chatlens.core.run_reader import text
from chatlens.core.schemas import RunInfo
from chatlens.core.settings import Settings
from chatlens.core.store import RunStore


def job_options(settings: Settings) -> dict:
    """What every producer job gets: a timeout, retries with backoff, and how long RQ keeps it."""
    return {
        "timeout": settings.job_timeout_s,
        "result_ttl": 3600,
        "failure_ttl": settings.result_ttl_s,
        "retry": Retry(max=len(settings.retry_intervals_s), interval=settings.retry_intervals_s),
    }


def classify_targets(connection: Redis, settings: Settings) -> list[tuple[str, Queue]]:
    """Each enabled classifier with its queue: every micro-batch goes to each of them."""
    return [
        (c, Queue(queues.classify_queue(c), connection=connection, serializer=queues.SERIALIZER))
        for c in settings.classifiers
    ]


def enqueue_classify_jobs(
    pipe: Pipeline, targets: list[tuple[str, Queue]], run: str, payloads: list[dict], options: dict
) -> None:
    """One classify job per micro-batch payload and classifier, added to `pipe` (the caller executes it
    together with the messages, so a batch is never stored without its jobs or the reverse)."""
    for classifier, queue in targets:
        jobs = [
            Queue.prepare_data(
                queues.CLASSIFY_JOB,
                kwargs={"batch": payload, "classifier": classifier},
                description=f"{classifier}: {len(payload['items'])} messages of run {run}",
                **options,
            )
            for payload in payloads
        ]
        queue.enqueue_many(jobs, pipeline=pipe)


def record_run(
    connection: Redis, ttl_s: int, run: str, source: str, classifiers: list[str], summaries: bool = False
) -> RunInfo:
    """Describe the run as it now stands in Redis (a re-produce adds to it, never replaces it).
    `summaries`: this produce enqueues summaries; once a run expects them it keeps expecting them."""
    store = RunStore(connection, ttl_s)
    previous = store.run_info(run)
    # Counters kept as messages are stored (`RunStore.add_new_messages`): nothing is read back.
    labelled, digest = store.message_stats(run)
    info = RunInfo(
        run=run,
        source=source,
        dataset_hash=digest,
        messages=store.message_count(run),
        labelled=labelled,
        classifiers=sorted(set(classifiers) | set(previous.classifiers if previous else [])),
        summaries=summaries or bool(previous and previous.summaries),
        created_at=previous.created_at if previous else datetime.now(UTC),
    )
    store.save_run_info(info)
    return info


def expect_summaries(connection: Redis, ttl_s: int, run: str) -> None:
    """Note on the run's record that it expects a summary per conversation (`chatlens summarise`)."""
    store = RunStore(connection, ttl_s)
    info = store.run_info(run)
    if info is not None and not info.summaries:
        store.save_run_info(info.model_copy(update={"summaries": True}))


def queues_without_workers(connection: Redis, names: list[str]) -> list[str]:
    """The queues among `names` that no live worker serves and no starting worker will serve: a worker
    still loading its models is not registered with rq yet, but its marker (keys.worker_starting) is."""
    served: set[str] = set()
    for worker in Worker.all(connection=connection):
        served.update(worker.queue_names())
    served.update(starting_workers(connection))
    return [n for n in names if n not in served]


def starting_workers(connection: Redis) -> set[str]:
    """The queues of the workers that are starting (loading their models) now."""
    found: set[str] = set()
    for key in connection.scan_iter(match=f"{keys.WORKER_STARTING_PREFIX}*", count=1_000):
        value = connection.get(key)
        if value:
            found.update(text(value).split(","))
    return found


def idle_queues_warning(connection: Redis, names: list[str]) -> str | None:
    """The warning `produce` and `summarise` end with when jobs went to queues nobody serves: one
    `chatlens worker` command that serves every one of them; None when each is served or a worker that
    will serve it is starting."""
    idle = queues_without_workers(connection, names)
    if not idle:
        return None
    flags = " ".join(f"--queue {n}" for n in idle)
    return f"no live worker on {', '.join(idle)}; start one with `chatlens worker {flags}`"
