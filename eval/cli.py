"""`chatlens eval` and `chatlens results`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import TaskID
from rich.table import Table

from chatlens.backends.summariser import SUMMARISERS
from chatlens.core.connection import connect_settings
from chatlens.core.console import err, out, progress_bar, user_errors
from chatlens.core.errors import ChatlensError
from chatlens.core.redact import redact_url
from chatlens.core.settings import get_settings
from chatlens.core.store import RunStore
from eval.cron import build_scheduler
from eval.export import export_results

# eval.evaluate and eval.summaries are imported by the commands that run them: `chatlens worker` imports
# this module too, and a classifier worker should not carry matplotlib, nltk and scikit-learn.


class Format(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


@user_errors
def evaluate(
    run: str = typer.Option(..., "--run", help="the run to evaluate"),
    out_dir: Path | None = typer.Option(None, "--out", help="output directory [default: reports/<run>]"),
    mlflow: bool = typer.Option(True, help="log one MLflow run per model"),
    redis_url: str | None = typer.Option(None, help="overrides CHATLENS_REDIS_URL"),
) -> None:
    """Score every model's predictions for RUN: metrics.json, report.md, confusion PNGs, MLflow."""
    settings = get_settings()
    connection = connect_settings(settings, redis_url)
    target = out_dir or settings.reports_dir / run
    from eval.evaluate import evaluate_run

    document = evaluate_run(connection, settings, run, target, track=mlflow)
    print_summary(document)
    warn_corrupt(document["corrupt_records"], target / "report.md")
    out.print(
        f"wrote {target}/metrics.json, report.md and the confusion matrices", highlight=False, soft_wrap=True
    )
    if mlflow and document.get("mlflow_run_ids"):
        print_mlflow_location(settings.mlflow_tracking_uri, settings.mlflow_experiment, document)


def print_mlflow_location(tracking_uri: str, experiment: str, document: dict) -> None:
    """Where the MLflow runs went, and the command that shows them (a password in the URI masked)."""
    shown = redact_url(tracking_uri)
    out.print(
        f"MLflow: {shown}, experiment {experiment!r}, runs {', '.join(document['mlflow_run_ids'])}",
        highlight=False,
        soft_wrap=True,
    )
    if document.get("regressions"):
        out.print(f"[bold red]regression:[/] {'; '.join(document['regressions'])}", soft_wrap=True)
    ui = f"mlflow ui --backend-store-uri {shown}" if tracking_uri.startswith("sqlite:") else f"open {shown}"
    out.print(f"see them: {ui}", highlight=False, soft_wrap=True)


def print_summary(document: dict) -> None:
    table = Table(title=f"run {document['run']}: {document['messages']} messages")
    for column in ("model", "accuracy", "macro-F1", "weighted-F1", "n", "coverage"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for model, m in document["models"].items():
        table.add_row(
            model,
            f"{m['accuracy']:.3f}",
            f"{m['macro_f1']:.3f}",
            f"{m['weighted_f1']:.3f}",
            str(m["n"]),
            f"{m['coverage']:.3f}",
        )
    out.print(table)


def warn_corrupt(corrupt: list[dict], listed_in: Path | None) -> None:
    if corrupt:
        first = corrupt[0]
        where = f"all listed in {listed_in}" if listed_in else "left out of the export"
        err.print(
            f"[yellow]warning:[/] {len(corrupt)} records of this run in Redis are corrupt and were not "
            f"used (first: {escape(first['key'])} {escape(first['field'])}: {escape(first['error'])}); "
            f"{escape(where)}",
            highlight=False,
            soft_wrap=True,
        )


@user_errors
def results(
    run: str = typer.Option(..., "--run", help="the run to export"),
    format: Format = typer.Option(Format.csv, "--format", help="csv or jsonl"),
    output: Path | None = typer.Option(None, "--output", "-o", help="file to write [default: stdout]"),
    summaries: bool = typer.Option(False, "--summaries", help="export the conversation summaries instead"),
    redis_url: str | None = typer.Option(None, help="overrides CHATLENS_REDIS_URL"),
) -> None:
    """Export RUN's predictions (one record per message, with every model's prediction) or, with
    --summaries, its conversation summaries (one record per conversation)."""
    settings = get_settings()
    store = RunStore(connect_settings(settings, redis_url), settings.result_ttl_s)
    if store.run_info(run) is None:
        raise ChatlensError(
            f"no run named {run!r} in Redis; produce it first with `chatlens produce FILE --run {run}`"
        )
    count = export_results(store, run, format.value, output, summaries=summaries)
    warn_corrupt([vars(c) for c in store.corrupt], None)
    if output is not None:
        what = "conversation summaries" if summaries else "messages"
        err.print(f"wrote {count} {what} to {output}", highlight=False, soft_wrap=True)
    if summaries:
        failed = store.summary_errors(run)
        if failed:
            err.print(
                f"[yellow]warning:[/] {len(failed)} conversations have no summary because it failed; "
                f"e.g. {next(iter(failed.values())).error}",
                highlight=False,
                soft_wrap=True,
            )


@user_errors
def eval_summaries(
    file: Path = typer.Argument(..., help="JSON list of {conversation_id, message, summary}"),
    out_dir: Path = typer.Option(..., "--out", help="output directory for metrics.json and report.md"),
    backend: list[str] | None = typer.Option(
        None, "--backend", "-b", help="backend(s) to run [default: every one that can load here]"
    ),
    limit: int | None = typer.Option(None, min=1, help="only the first N conversations"),
    mlflow: bool = typer.Option(True, help="log one MLflow run per backend"),
    compare: list[str] | None = typer.Option(
        None,
        "--compare",
        help="NAME=FILE: summaries written elsewhere (a JSON list of {conversation_id, summary}, e.g. the "
        "seed's bart-summary.json), scored beside the backends",
    ),
) -> None:
    """Summarise each conversation of FILE with every available backend and score it against its
    reference summary (ROUGE): metrics.json, report.md, summaries.jsonl, MLflow. With two or more
    backends or --compare files, each pair's ROUGE-L difference on the same conversations, with its 95%
    paired interval."""
    for name in backend or []:
        SUMMARISERS.check(name)
    written = compared_files(compare or [])
    settings = get_settings()
    bar = progress_bar()
    tasks: dict[str, TaskID] = {}

    from eval.summaries import evaluate_summaries_file, paired_lines, summary_table

    def progress(name: str, done: int, total: int) -> None:
        # The bar starts with the first summary: a bad file or setting stays a one-line error.
        if not tasks:
            bar.start()
        if name not in tasks:
            tasks[name] = bar.add_task(f"summarise ({name})", total=total)
        bar.update(tasks[name], completed=done)

    try:
        document = evaluate_summaries_file(
            file, out_dir, settings, backend, limit, mlflow, progress, compare=written
        )
    finally:
        if tasks:  # stopping a bar that never started would still print a blank line
            bar.stop()
    for line in summary_table(document["summaries"], document["compared"]):
        out.print(line, highlight=False, soft_wrap=True)
    if document["paired"]:
        out.print("paired on the same conversations:", highlight=False)
    for line in paired_lines(document["paired"]):
        out.print(f"  {line}", highlight=False, soft_wrap=True)
    for name, why in document["skipped"].items():
        err.print(f"skipped {name}: {why}", highlight=False, soft_wrap=True)
    out.print(f"wrote {out_dir}/metrics.json, report.md and summaries.jsonl", highlight=False, soft_wrap=True)


def compared_files(values: list[str]) -> dict[str, Path]:
    """--compare NAME=FILE options as {name: file}, or one line naming the bad one."""
    files: dict[str, Path] = {}
    for value in values:
        name, sep, file = value.partition("=")
        if not sep or not name.strip() or not file.strip():
            raise ChatlensError(
                f"--compare {value!r}: write NAME=FILE, e.g. --compare bart=bart-summary.json"
            )
        if name.strip() in files:
            raise ChatlensError(f"--compare: the name {name.strip()!r} is given twice")
        files[name.strip()] = Path(file.strip())
    return files


@user_errors
def cron(
    redis_url: str | None = typer.Option(None, help="overrides CHATLENS_REDIS_URL"),
) -> None:
    """Run RQ's cron scheduler with the nightly evaluation (see eval/cron.py)."""
    settings = get_settings()
    build_scheduler(settings, connect_settings(settings, redis_url)).start()
