"""The Redis key layout. Every key chatlens writes is named here and nowhere else."""

from __future__ import annotations

import re

PREFIX = "chatlens"
RUNS = f"{PREFIX}:runs"  # sorted set: run name -> creation time (epoch seconds)
MODEL_LOADS = f"{PREFIX}:stats:model_loads"  # hash: "<host>:<pid>:<model>" -> loads in that process
WORKER_PEAK_RSS = f"{PREFIX}:stats:worker_peak_rss_mb"  # hash: "<host>:<pid>" -> peak RSS (MiB)

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


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


def results(run: str, model: str) -> str:
    return f"{PREFIX}:run:{run}:results:{model}"  # hash: message id -> Prediction JSON


def errors(run: str, model: str) -> str:
    return f"{PREFIX}:run:{run}:errors:{model}"  # hash: message id -> MessageError JSON


def models(run: str) -> str:
    return f"{PREFIX}:run:{run}:models"  # set: names of the models that wrote results


def summaries(run: str) -> str:
    return f"{PREFIX}:run:{run}:summaries"  # hash: conversation id -> Summary JSON


def summary_errors(run: str) -> str:
    return f"{PREFIX}:run:{run}:summary-errors"  # hash: conversation id -> SummaryError JSON
