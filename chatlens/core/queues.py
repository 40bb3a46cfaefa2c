"""The queues chatlens uses, how their jobs are serialised, and the only functions a worker will run.

RQ resolves a job's function from the dotted name stored in the job, whatever the serializer: anyone
who can write to Redis could otherwise make a worker import and call any function. Workers check the
name against `JOB_FUNCTIONS` before importing anything (see worker/job.py).
"""

from __future__ import annotations

from rq.serializers import JSONSerializer

from chatlens.core.settings import Settings

# Never pickle: a job's arguments are JSON, records inside them are pydantic models dumped as JSON.
SERIALIZER = JSONSerializer

CLASSIFY_PREFIX = "classify-"
SUMMARISE_PREFIX = "summarise-"

CLASSIFY_JOB = "worker.jobs.classify_batch"
SUMMARISE_JOB = "worker.jobs.summarise_conversation"
SUMMARISE_MANY_JOB = "worker.jobs.summarise_conversations"
EVALUATE_JOB = "eval.jobs.evaluate_latest_run"
# Named by string, so the producer never imports torch and this layer imports nothing above it;
# tests/core/test_registry.py checks that each name imports. SUMMARISE_JOB stays allowed after the
# producer moved the extractive backend to SUMMARISE_MANY_JOB: jobs queued by an older producer must run.
JOB_FUNCTIONS: frozenset[str] = frozenset({CLASSIFY_JOB, SUMMARISE_JOB, SUMMARISE_MANY_JOB, EVALUATE_JOB})

# Backends that get several conversations per job (settings.summary_job_conversations): the extractive
# summariser embeds all their sentences in one length-sorted encoder pass, 1.73x faster than one call per
# conversation. The generative backends (llamacpp, mlx, transformers) stay at one conversation per job:
# they take seconds to minutes per conversation, so one per job keeps a job within its timeout and a
# retry small.
BATCHED_SUMMARY_BACKENDS: frozenset[str] = frozenset({"extractive"})


def classify_queue(classifier: str) -> str:
    return f"{CLASSIFY_PREFIX}{classifier}"


def summarise_queue(backend: str) -> str:
    return f"{SUMMARISE_PREFIX}{backend}"


def default_queues(settings: Settings) -> list[str]:
    """The queues the producer fills and a worker serves unless told otherwise."""
    names = [classify_queue(c) for c in settings.classifiers]
    if settings.summarise:
        names.append(summarise_queue(settings.summary_backend))
    return names
