"""Nightly regressions: tonight's figures against the previous evaluation of the same run, flagged where
a figure dropped by more than its threshold (CHATLENS_REGRESSION_*_DROP).

The flag goes where an operator looks: a "## Regressions" section of report.md, metrics.json's
"regressions", the MLflow runs (tag `regression=true|false`, metric `regression` 1/0), and the run's
last-eval record in Redis, which `chatlens status` and the exporter show. Every evaluation is also
kept in the run's eval history (newest first), which the trend plot draws.
"""

from __future__ import annotations

import json
from pathlib import Path

from redis import Redis

from chatlens.core import keys
from chatlens.core.schemas import LastEval
from chatlens.core.settings import Settings
from eval.metrics import ModelMetrics

RECALL = "recall:"


def results_version(connection: Redis, run: str) -> int:
    return int(connection.get(keys.results_version(run)) or 0)


def model_figures(models: list[ModelMetrics]) -> dict[str, dict[str, float]]:
    figures: dict[str, dict[str, float]] = {}
    for m in models:
        row = {"accuracy": m.accuracy, "macro_f1": m.macro_f1}
        # A class with no true message has no recall worth comparing.
        row.update({f"{RECALL}{c.label}": c.recall for c in m.per_class if c.support > 0})
        figures[m.model] = row
    return figures


def summary_figures(summaries: dict[str, dict]) -> dict[str, dict[str, float]]:
    return {b: {"rougeL": float(m["rougeL"])} for b, m in summaries.items() if "rougeL" in m}


def thresholds(settings: Settings) -> dict[str, float]:
    return {
        "accuracy": settings.regression_accuracy_drop,
        "macro_f1": settings.regression_macro_f1_drop,
        RECALL: settings.regression_recall_drop,
        "rougeL": settings.regression_rouge_l_drop,
    }


def compare(previous: LastEval, current: LastEval, settings: Settings) -> list[str]:
    """One line per figure that dropped by more than its threshold; models or figures that are new
    tonight have nothing to compare with and are not flagged."""
    limits = thresholds(settings)
    lines: list[str] = []
    for kind, before_all, now_all in (
        ("model", previous.models, current.models),
        ("summaries", previous.summaries, current.summaries),
    ):
        for name, now in now_all.items():
            before = before_all.get(name, {})
            for figure, value in now.items():
                if figure not in before:
                    continue
                limit = limits[RECALL if figure.startswith(RECALL) else figure]
                drop = before[figure] - value
                if drop > limit:
                    lines.append(
                        f"{kind} {name} {figure} {before[figure]:.3f} -> {value:.3f} "
                        f"(-{drop:.3f}, threshold {limit:.3f})"
                    )
    return lines


def previous_eval(connection: Redis, run: str) -> LastEval | None:
    raw = connection.lindex(keys.eval_history(run), 0)
    return LastEval.model_validate_json(raw) if raw else None


def history(connection: Redis, run: str, nights: int) -> list[LastEval]:
    """The run's last `nights` evaluations, oldest first."""
    raws = connection.lrange(keys.eval_history(run), 0, nights - 1)
    return [LastEval.model_validate_json(r) for r in reversed(raws)]


def record_evaluation(
    connection: Redis,
    settings: Settings,
    document: dict,
    models: list[ModelMetrics],
    out_dir: Path,
    version: int,
) -> LastEval:
    """Compare, flag (report.md, metrics.json, MLflow), keep in Redis, and draw the trend."""
    run = document["run"]
    current = LastEval(
        run=run,
        results_version=version,
        out_dir=str(out_dir),
        models=model_figures(models),
        summaries=summary_figures(document.get("summaries") or {}),
        mlflow_run_ids=list(document.get("mlflow_run_ids") or []),
    )
    previous = previous_eval(connection, run)
    if previous is not None:
        current = current.model_copy(update={"regressions": compare(previous, current, settings)})
    document["regressions"] = current.regressions
    (out_dir / "metrics.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    with (out_dir / "report.md").open("a", encoding="utf-8") as handle:
        handle.write(_report_section(previous, current))
    if current.mlflow_run_ids:
        _flag_in_mlflow(settings, current)
    ttl = settings.result_ttl_s
    with connection.pipeline() as pipe:
        pipe.set(keys.last_eval(run), current.model_dump_json(), ex=ttl)
        pipe.lpush(keys.eval_history(run), current.model_dump_json())
        pipe.ltrim(keys.eval_history(run), 0, max(settings.trend_nights, 2) - 1)
        pipe.expire(keys.eval_history(run), ttl)
        pipe.execute()
    from eval.trend import plot_trend

    plot_trend(out_dir / "trend.png", history(connection, run, settings.trend_nights))
    return current


def _report_section(previous: LastEval | None, current: LastEval) -> str:
    if previous is None:
        return "\n## Regressions\n\nFirst evaluation of this run: nothing to compare with yet.\n"
    head = f"\n## Regressions\n\nAgainst the evaluation of {previous.evaluated_at:%Y-%m-%d %H:%M} UTC"
    if not current.regressions:
        return head + ": no figure dropped beyond its threshold. Trend: `trend.png`.\n"
    return (
        head
        + ": **REGRESSION**\n\n"
        + "".join(f"- {line}\n" for line in current.regressions)
        + "\nTrend: `trend.png`.\n"
    )


def _flag_in_mlflow(settings: Settings, current: LastEval) -> None:
    from eval.tracking import use_experiment

    mlflow = use_experiment(settings.mlflow_tracking_uri, settings.mlflow_experiment)
    client = mlflow.MlflowClient()
    for run_id in current.mlflow_run_ids:
        client.set_tag(run_id, "regression", "true" if current.regression else "false")
        client.log_metric(run_id, "regression", 1.0 if current.regression else 0.0)
