"""`chatlens demo`: the whole path on the embedded default, in one process, with no service to run."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from redis import Redis

from chatlens.cli.job_functions import JOB_FUNCTIONS
from chatlens.core.connection import FAKE_URL, connect_settings
from chatlens.core.console import out, user_errors
from chatlens.core.queues import default_queues
from chatlens.core.redact import redact_url
from chatlens.core.settings import Settings, get_settings
from chatlens.core.store import RunStore
from eval.cli import print_summary
from eval.export import export_results
from producer.pipeline import produce_input
from worker.runner import run_worker

# Shipped as package data, so the demo has its input in an installed package and the Docker image.
EXAMPLE_FILE = Path(__file__).resolve().parent.parent / "data" / "messages.csv"
DEMO_RUN = "demo"


@user_errors
def demo(
    file: Path | None = typer.Argument(
        None, help="messages to classify [default: the bundled example, 97 rows]"
    ),
    out_dir: Path = typer.Option(Path("demo-report"), "--out", help="where the report is written"),
    mlflow: bool = typer.Option(True, help="log the evaluation to MLflow (local sqlite by default)"),
) -> None:
    """Produce -> worker (burst, in-process) -> eval on an in-process Redis, then print the report.

    With CHATLENS_REDIS_URL set, the real Redis at that URL is used instead.
    """
    settings = get_settings()
    url = settings.redis_url if "redis_url" in settings.model_fields_set else FAKE_URL
    where = "an in-process Redis (fakeredis)" if url == FAKE_URL else redact_url(url)
    out.print(f"[bold]chatlens demo[/] on {where}", highlight=False)
    produce_input(settings, file or EXAMPLE_FILE, DEMO_RUN, redis_url=url, warn_idle_queues=False)
    connection = connect_settings(settings, url)
    with out.status(
        "classifying and summarising (models load once, then one job per batch or conversation)..."
    ):
        run_worker(
            settings,
            connection,
            default_queues(settings),
            burst=True,
            logging_level="WARNING",
            with_scheduler=url != FAKE_URL,
            job_functions=JOB_FUNCTIONS,
        )
        logging.getLogger("rq").setLevel(logging.WARNING)
    from eval.evaluate import evaluate_run  # matplotlib, nltk: not for every `chatlens` command

    document = evaluate_run(connection, settings, DEMO_RUN, out_dir, track=mlflow)
    print_summary(document)
    out.print(
        (out_dir / "report.md").read_text(encoding="utf-8"), markup=False, highlight=False, soft_wrap=True
    )
    _print_summaries(connection, settings, out_dir)
    out.print(f"report, metrics.json and confusion matrices in {out_dir}/", highlight=False, soft_wrap=True)
    if mlflow:
        out.print(
            f"MLflow runs logged to {redact_url(settings.mlflow_tracking_uri)}",
            highlight=False,
            soft_wrap=True,
        )


def _print_summaries(connection: Redis, settings: Settings, out_dir: Path) -> None:
    store = RunStore(connection, settings.result_ttl_s)
    summaries = sorted(store.summaries(DEMO_RUN).values(), key=lambda s: s.conversation_id)
    if not summaries:
        return
    count = export_results(store, DEMO_RUN, "jsonl", out_dir / "summaries.jsonl", summaries=True)
    out.print(f"\n[bold]Conversation summaries[/] ({summaries[0].backend}, {count} conversations):")
    for s in summaries[:3]:
        out.print(f"  {s.conversation_id}: {s.text}", highlight=False, soft_wrap=True)
    out.print(f"  ... all of them in {out_dir}/summaries.jsonl", highlight=False, soft_wrap=True)
