"""`chatlens produce` and `chatlens summarise`: the options, then the one pipeline (`pipeline`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer
from rich.markup import escape

from chatlens.backends.summariser import SUMMARISERS
from chatlens.core import queues
from chatlens.core.connection import connect_settings
from chatlens.core.console import err, out, progress_bar, user_errors
from chatlens.core.errors import ChatlensError
from chatlens.core.keys import check_run_name
from chatlens.core.settings import get_settings
from chatlens.core.store import RunStore
from producer.enqueue import expect_summaries, idle_queues_warning
from producer.pipeline import produce_input
from producer.rows import Columns, Format
from producer.sampling import Sample
from producer.summaries import conversations, enqueue_summaries


class Split(StrEnum):
    all = "all"
    train = "train"
    test = "test"


@user_errors
def produce(
    file: Path = typer.Argument(..., help="CSV, JSONL or Parquet file of messages; - reads stdin"),
    run: str = typer.Option(..., "--run", help="run name: results and eval are kept per run"),
    # Ranges are checked in produce_input, so a wrong value is one line rather than click's usage box.
    sample_frac: float = typer.Option(1.0, help="stratified sample by label, 0 < frac <= 1 (0.2 = the seed)"),
    test_frac: float = typer.Option(0.3, help="test share for --split, 0 < frac < 1"),
    split: Split = typer.Option(Split.all, help="all = no split; train/test = enqueue that part only"),
    seed: int = typer.Option(0, help="seed of the sample and the split"),
    batch_size: int | None = typer.Option(None, min=1, help="messages per micro-batch [default: 64]"),
    out_dir: Path | None = typer.Option(
        None, help="write train.csv/test.csv of the split and the rejects here"
    ),
    id_column: str = typer.Option("conversation_id", help="column holding the conversation id"),
    message_column: str = typer.Option("message", help="column holding the message text"),
    label_column: str = typer.Option("sentiment", help="column holding the true label (optional)"),
    redis_url: str | None = typer.Option(None, help="overrides CHATLENS_REDIS_URL"),
    input_format: Format | None = typer.Option(
        None, "--format", help="jsonl, csv (with a header) or parquet [default: FILE's suffix, else sniffed]"
    ),
    follow: bool = typer.Option(False, "--follow", help="keep reading FILE as it grows, like tail -F"),
    flush_ms: int | None = typer.Option(None, min=1, help="flush a partial batch after this long [300]"),
    conversation_idle_s: float | None = typer.Option(
        None, min=0.01, help="summarise a conversation of a stream once quiet this long [30]"
    ),
    max_queued: int | None = typer.Option(None, min=1, help="wait while a queue holds this many jobs [2000]"),
) -> None:
    """Read FILE (or stdin: -), drop empty and duplicate rows, and enqueue the messages in micro-batches."""
    settings = get_settings()
    overrides = {
        "batch_size": batch_size,  # the flags override CHATLENS_* for this command
        "flush_ms": flush_ms,
        "conversation_idle_s": conversation_idle_s,
        "max_queued": max_queued,
    }
    settings = settings.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    produce_input(
        settings,
        file,
        run,
        input_format,
        follow,
        Columns(id_column, message_column, label_column),
        out_dir,
        redis_url,
        sample=Sample(sample_frac, test_frac, seed, split.value),
    )


@user_errors
def summarise(
    file: Path | None = typer.Argument(
        None, help="CSV, JSONL or Parquet file of messages; leave out to re-summarise the run's conversations"
    ),
    run: str = typer.Option(..., "--run", help="run the summaries are kept under"),
    backend: str | None = typer.Option(None, help="summary backend [default: CHATLENS_SUMMARY_BACKEND]"),
    id_column: str = typer.Option("conversation_id", help="column holding the conversation id"),
    message_column: str = typer.Option("message", help="column holding the message text"),
    label_column: str = typer.Option("sentiment", help="column holding the true label (optional)"),
    redis_url: str | None = typer.Option(None, help="overrides CHATLENS_REDIS_URL"),
) -> None:
    """(Re)summarise every conversation of FILE, or of RUN as produced, on the backend's queue."""
    settings = get_settings()
    chosen = SUMMARISERS.check(backend or settings.summary_backend)
    try:
        check_run_name(run)
    except ValueError as exc:
        raise ChatlensError(str(exc)) from None
    if file is not None:
        # The messages are stored (no classify jobs) so that `--run` can re-summarise and `eval` score.
        produce_input(
            settings.model_copy(update={"classifiers": [], "summarise": False}),
            file,
            run,
            columns=Columns(id_column, message_column, label_column),
            redis_url=redis_url,
        )
    connection = connect_settings(settings, redis_url)
    store = RunStore(connection, settings.result_ttl_s)
    if file is None and store.run_info(run) is None:
        raise ChatlensError(f"no run named {run!r} in Redis; give a FILE, or produce the run first")
    items = conversations(run, store.messages(run).values())
    with progress_bar() as progress:
        task = progress.add_task(f"summaries ({chosen})", total=len(items))
        count = enqueue_summaries(connection, settings, items, chosen, lambda n: progress.advance(task, n))
    out.print(
        f"enqueued {count} conversations on {queues.summarise_queue(chosen)}", highlight=False, soft_wrap=True
    )
    expect_summaries(connection, settings.result_ttl_s, run)
    warning = idle_queues_warning(connection, [queues.summarise_queue(chosen)])
    if warning:
        err.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
