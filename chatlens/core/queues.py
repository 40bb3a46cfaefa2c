"""The queues chatlens uses, how their jobs are serialised, and the names of its job functions.

RQ resolves a job's function from the dotted name stored in the job, whatever the serializer: anyone
who can write to Redis could otherwise make a worker import and call any function. A worker checks the
name against the job functions it was built with before importing anything (worker/job.py); that set is
made from the functions themselves where the roles are assembled (worker/runner.py, chatlens/cli).
"""

from __future__ import annotations

from collections.abc import Callable

from rq.serializers import JSONSerializer

from chatlens.core.settings import Settings

# Never pickle: a job's arguments are JSON, records inside them are pydantic models dumped as JSON.
SERIALIZER = JSONSerializer

CLASSIFY_PREFIX = "classify-"
SUMMARISE_PREFIX = "summarise-"

# The producer enqueues by these names: a producer host has no torch and must not import worker/, and this
# layer imports nothing above it. tests/core/test_job_functions.py checks each against `job_name` of the
# real function. SUMMARISE_JOB (one conversation a job) is what the producer enqueues for a generative
# backend; SUMMARISE_MANY_JOB (several) is for the backends in BATCHED_SUMMARY_BACKENDS.
CLASSIFY_JOB = "worker.jobs.classify_batch"
SUMMARISE_JOB = "worker.jobs.summarise_conversation"
SUMMARISE_MANY_JOB = "worker.jobs.summarise_conversations"
EVALUATE_JOB = "eval.jobs.evaluate_latest_run"
# The jobs that run under CHATLENS_JOB_TIMEOUT_S, as the worker running them has it (the nightly
# evaluation sets its own): applied when a job starts, and when `chatlens requeue` puts one back.
TIMED_JOBS = frozenset({CLASSIFY_JOB, SUMMARISE_JOB, SUMMARISE_MANY_JOB})


def job_name(func: Callable[..., object]) -> str:
    """The name RQ stores for a job of `func` (what `Queue.enqueue(func)` writes): module.qualname."""
    return f"{func.__module__}.{func.__qualname__}"


# Backends that get several conversations per job (settings.summary_job_conversations): the extractive
# summariser embeds all their sentences in one length-sorted encoder pass, faster than one call per
# conversation (docs/models/extractive.md, its speed table). The generative backends (llamacpp, mlx,
# transformers) stay at one conversation per job: they take seconds to minutes per conversation, so one
# per job keeps a job within its timeout and a retry small.
BATCHED_SUMMARY_BACKENDS: frozenset[str] = frozenset({"extractive"})


def classify_queue(classifier: str) -> str:
    return f"{CLASSIFY_PREFIX}{classifier}"


def summarise_queue(backend: str) -> str:
    return f"{SUMMARISE_PREFIX}{backend}"


def is_chatlens_queue(name: str, settings: Settings) -> bool:
    """Whether chatlens fills the queue `name`: classify-*, summarise-* or the eval queue."""
    return name.startswith((CLASSIFY_PREFIX, SUMMARISE_PREFIX)) or name == settings.eval_queue


def default_queues(settings: Settings) -> list[str]:
    """The queues the producer fills and a worker serves unless told otherwise."""
    names = [classify_queue(c) for c in settings.classifiers]
    if settings.summarise:
        names.append(summarise_queue(settings.summary_backend))
    return names


def job_run(func_name: str | None, kwargs: object, meta: object = None) -> str | None:
    """The run a chatlens job works for, read from its JSON arguments as the producer writes them
    (`batch=`, `conversation=`, `conversations=`), or from `meta["run"]` where a job carries one; None
    for the evaluation job and anything else. Shared by `chatlens failed` and `chatlens status`, so the
    two always count the same failed jobs for a run."""
    if isinstance(meta, dict) and isinstance(meta.get("run"), str):
        return meta["run"]
    args = kwargs if isinstance(kwargs, dict) else {}
    if func_name == CLASSIFY_JOB:
        found = args.get("batch")
    elif func_name == SUMMARISE_JOB:
        found = args.get("conversation")
    elif func_name == SUMMARISE_MANY_JOB:
        convs = args.get("conversations")
        found = convs[0] if isinstance(convs, list) and convs else None
    else:
        return None
    run = found.get("run") if isinstance(found, dict) else None
    return run if isinstance(run, str) else None
