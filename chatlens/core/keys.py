"""The Redis key layout. Every key chatlens writes is named here and nowhere else."""

from __future__ import annotations

import re

PREFIX = "chatlens"
RUNS = f"{PREFIX}:runs"  # sorted set: run name -> creation time (epoch seconds)
MODEL_LOADS = f"{PREFIX}:stats:model_loads"  # hash: "<host>:<pid>:<model>" -> loads in that process
WORKER_PEAK_RSS = f"{PREFIX}:stats:worker_peak_rss_mb"  # hash: "<host>:<pid>" -> peak RSS (MiB)
# string "<queues, comma-separated>", one per worker process that is loading its models: set when
# `chatlens worker` starts, refreshed while it loads, deleted once it serves (or it expires), so `produce`
# counts a worker that is still loading as one that is coming (see WORKER_STARTING_TTL_S).
WORKER_STARTING_PREFIX = f"{PREFIX}:worker-starting:"
WORKER_STARTING_TTL_S = 30
# The lock of the one scheduling pass at a time (worker/scheduling.py): who moves retried jobs whose
# backoff has passed back onto their queue. Held for a few seconds and renewed by its holder, so it
# passes to another worker soon after its holder dies.
SCHEDULER_LOCK = f"{PREFIX}:lock:scheduler"
# A lock the nightly evaluation holds while it runs, so missed cron ticks queued behind each other
# never evaluate concurrently (and the later ones find the run unchanged and skip).
EVAL_LOCK = f"{PREFIX}:lock:nightly-eval"

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def worker_starting(process: str) -> str:
    return f"{WORKER_STARTING_PREFIX}{process}"  # process: "<host>:<pid>"


def check_run_name(run: str) -> str:
    if not _RUN_NAME.match(run):
        raise ValueError(
            f"run name {run!r} is not valid: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return run


def run_info(run: str) -> str:
    return f"{PREFIX}:run:{run}:info"  # string: RunInfo JSON


def messages(run: str) -> str:
    return f"{PREFIX}:run:{run}:messages"  # hash: message id -> Message JSON


def message_stats(run: str) -> str:
    # string read with BITFIELD: two wrapping i64 sums of the stored messages' (id, label) digests (the
    # order-free dataset hash) and the count of labelled ones, kept as messages are added, so describing
    # a run never reads its messages back
    return f"{PREFIX}:run:{run}:message-stats"


def run_pattern(run: str) -> str:
    return f"{PREFIX}:run:{run}:*"  # every key of the run (run names hold no glob characters)


# A model's name in these keys is its registry key (`default`, `accurate`...). Before, the built-in
# classifiers stored results under names of their own; a run written then is read under the key
# (RunStore.models and its readers, LastEval), so an old run and one written across the upgrade read as
# one model each. The one place the old names live.
LEGACY_MODEL_NAMES = {
    "minilm-head": "default",
    "mpnet-head": "accurate",
    "emotion-go": "emotion",
    "zeroshot-nli": "zeroshot",
    "minilm-ft": "finetuned",
}


def model_name(stored: str) -> str:
    """The name a model stored as `stored` has now: its registry key."""
    return LEGACY_MODEL_NAMES.get(stored, stored)


def results(run: str, model: str) -> str:
    return f"{PREFIX}:run:{run}:results:{model}"  # hash: message id -> Prediction JSON


def errors(run: str, model: str) -> str:
    return f"{PREFIX}:run:{run}:errors:{model}"  # hash: message id -> MessageError JSON


def models(run: str) -> str:
    return f"{PREFIX}:run:{run}:models"  # set: names of the models that wrote results


def conversations(run: str) -> str:
    # hash: conversation id -> messages of it stored in the run, kept as messages are added: what a
    # summary must cover (a summary with fewer turns is stale) and the summaries a run expects
    return f"{PREFIX}:run:{run}:conversations"


def summaries(run: str) -> str:
    return f"{PREFIX}:run:{run}:summaries"  # hash: conversation id -> Summary JSON


def summary_errors(run: str) -> str:
    return f"{PREFIX}:run:{run}:summary-errors"  # hash: conversation id -> SummaryError JSON


def throughput(run: str) -> str:
    # hash: minute (epoch seconds // 60) -> messages a worker wrote a result or an error for in it
    # (a retried batch counts again); `chatlens status` reads the last minutes for msg/s and the ETA.
    return f"{PREFIX}:run:{run}:throughput"


def summary_throughput(run: str) -> str:
    # hash: minute (epoch seconds // 60) -> conversations a worker wrote a summary or a summary error for
    # in it; with `throughput`, what `chatlens status` reads for the summaries' rate and ETA.
    return f"{PREFIX}:run:{run}:summary-throughput"


def results_version(run: str) -> str:
    return f"{PREFIX}:run:{run}:results-version"  # counter: +1 per results/summary write


def last_eval(run: str) -> str:
    return f"{PREFIX}:run:{run}:last-eval"  # string: LastEval JSON of the run's latest evaluation


def eval_history(run: str) -> str:
    return f"{PREFIX}:run:{run}:eval-history"  # list: LastEval JSON, newest first (trend, regressions)
