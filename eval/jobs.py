"""RQ job functions of the evaluation side."""

from __future__ import annotations

from datetime import UTC, datetime

from rq import get_current_job

from chatlens.settings import get_settings
from chatlens.store import RunStore
from eval.evaluate import evaluate_run


def evaluate_latest_run() -> dict:
    """The nightly job: evaluate the newest run into reports/<run>/<UTC timestamp>/ and MLflow."""
    job = get_current_job()
    if job is None:
        raise RuntimeError("evaluate_latest_run runs inside an RQ worker")
    settings = get_settings()
    run = RunStore(job.connection, settings.result_ttl_s).latest_run()
    if run is None:
        return {"run": None, "skipped": "no run in Redis"}
    out_dir = settings.reports_dir / run / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    document = evaluate_run(job.connection, settings, run, out_dir)
    return {
        "run": run,
        "out_dir": str(out_dir),
        "models": {
            name: {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
            for name, m in document["models"].items()
        },
    }
