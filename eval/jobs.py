"""RQ job functions of the evaluation side."""

from __future__ import annotations

from datetime import UTC, datetime

from chatlens.core.context import JobContext
from eval.evaluate import evaluate_run


def evaluate_latest_run(ctx: JobContext) -> dict:
    """The nightly job: evaluate the newest run into reports/<run>/<UTC timestamp>/ and MLflow."""
    run = ctx.store.latest_run()
    if run is None:
        return {"run": None, "skipped": "no run in Redis"}
    out_dir = ctx.settings.reports_dir / run / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    document = evaluate_run(ctx.connection, ctx.settings, run, out_dir)
    return {
        "run": run,
        "out_dir": str(out_dir),
        "models": {
            name: {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
            for name, m in document["models"].items()
        },
    }
