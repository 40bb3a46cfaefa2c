"""Logging an evaluation to MLflow: one run per model, with the same figures and files as on disk.

A model is named by its registry key (run name `<run>/<key>`, param `model`, tag `chatlens.model`), as in
Redis, metrics.json and report.md; what exactly produced its results is the param `model_version`."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import ModuleType

from chatlens.core.errors import ServiceUnavailable
from eval.metrics import ModelMetrics


def quiet_mlflow() -> ModuleType:
    """Import mlflow without its migration chatter and telemetry notices on first use."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    # mlflow configures its loggers on import, so quieten them after it.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return mlflow


def use_experiment(tracking_uri: str, experiment: str) -> ModuleType:
    """mlflow, pointed at `experiment`; an unreachable or broken store is one line, exit 3."""
    mlflow = quiet_mlflow()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        mlflow.set_experiment(experiment)
    except Exception as exc:  # sqlalchemy or HTTP errors, by backend
        raise ServiceUnavailable(
            f"cannot use MLflow at {tracking_uri} ({type(exc).__name__}: {exc})"
        ) from exc
    return mlflow


def log_evaluation(
    tracking_uri: str,
    experiment: str,
    run: str,
    dataset_hash: str,
    enqueued: int,
    models: list[ModelMetrics],
    out_dir: Path,
) -> list[str]:
    """Return the MLflow run ids."""
    mlflow = use_experiment(tracking_uri, experiment)
    run_ids: list[str] = []
    for m in models:
        with mlflow.start_run(run_name=f"{run}/{m.model}") as active:
            mlflow.log_params(
                {
                    "run": run,
                    "model": m.model,
                    "model_version": ", ".join(m.model_versions),
                    "dataset_hash": dataset_hash,
                    "messages": enqueued,
                }
            )
            mlflow.log_metrics(
                {
                    "accuracy": m.accuracy,
                    "macro_f1": m.macro_f1,
                    "weighted_f1": m.weighted_f1,
                    "coverage": m.coverage,
                    "n": m.n,
                    "errors": m.errors,
                }
            )
            mlflow.set_tags(
                {"chatlens.kind": "classification-eval", "chatlens.run": run, "chatlens.model": m.model}
            )
            for name in ("metrics.json", "report.md", f"confusion_{m.model}.png"):
                if (out_dir / name).exists():
                    mlflow.log_artifact(str(out_dir / name))
            run_ids.append(active.info.run_id)
    return run_ids


def log_summary_evaluation(
    tracking_uri: str,
    experiment: str,
    name: str,
    summaries: dict[str, dict],
    out_dir: Path,
    models: dict[str, str] | None = None,
    conversations: int | None = None,
) -> list[str]:
    """One MLflow run per summary backend of `summaries` ({backend: metrics}); returns the run ids.
    A run's metrics carry their own "conversations"; a reference file's all share `conversations`."""
    mlflow = use_experiment(tracking_uri, experiment)
    run_ids: list[str] = []
    for backend, metrics in summaries.items():
        with mlflow.start_run(run_name=f"{name}/summaries-{backend}") as active:
            mlflow.log_params(
                {
                    "source": name,
                    "backend": backend,
                    "model": (models or {}).get(backend, ""),
                    "conversations": metrics.get("conversations", conversations),
                }
            )
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if k != "conversations"})
            mlflow.set_tags({"chatlens.kind": "summary-eval", "chatlens.source": name})
            for artifact in ("metrics.json", "report.md", "summaries.jsonl"):
                if (out_dir / artifact).exists():
                    mlflow.log_artifact(str(out_dir / artifact))
            run_ids.append(active.info.run_id)
    return run_ids
