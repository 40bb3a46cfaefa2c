"""RQ job functions of the evaluation side."""

from __future__ import annotations

from datetime import UTC, datetime

from chatlens.core import keys
from chatlens.core.context import JobContext
from chatlens.core.schemas import LastEval
from eval.regression import results_version


def evaluate_latest_run(ctx: JobContext) -> dict:
    """The nightly job: evaluate the newest run into reports/<run>/<UTC timestamp>/ and MLflow.

    Missed ticks do not pile up: ticks queued while the eval worker was down run one at a time (a
    lock), and a run whose results have not changed since its last evaluation is skipped.
    """
    run = ctx.store.latest_run()
    if run is None:
        return {"run": None, "skipped": "no run in Redis"}
    lock = ctx.connection.lock(keys.EVAL_LOCK, timeout=3600, blocking=False)
    if not lock.acquire():
        return {"run": run, "skipped": "another nightly evaluation is running"}
    try:
        return _evaluate_if_changed(ctx, run)
    finally:
        lock.release()


def _evaluate_if_changed(ctx: JobContext, run: str) -> dict:
    last = ctx.connection.get(keys.last_eval(run))
    version = results_version(ctx.connection, run)
    if last is not None and LastEval.model_validate_json(last).results_version == version:
        return {"run": run, "skipped": f"unchanged since its last evaluation (results version {version})"}
    # Imported here: every `chatlens worker` names this job (chatlens/cli/job_functions.py), and the
    # evaluation's plotting and ROUGE stack (matplotlib, nltk, scikit-learn) would otherwise sit in the
    # memory of each classifier worker, which never runs it.
    from eval.evaluate import evaluate_run

    out_dir = ctx.settings.reports_dir / run / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    document = evaluate_run(ctx.connection, ctx.settings, run, out_dir)
    return {
        "run": run,
        "out_dir": str(out_dir),
        "regressions": document["regressions"],
        "models": {
            name: {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
            for name, m in document["models"].items()
        },
    }
