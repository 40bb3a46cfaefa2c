"""`chatlens produce`: file -> clean -> sample/split -> Redis."""

from __future__ import annotations

import os
import tempfile
from enum import StrEnum
from pathlib import Path

import pandas as pd
import typer

from chatlens.backends.classifier import CLASSIFIERS
from chatlens.backends.summariser import SUMMARISERS
from chatlens.core import queues
from chatlens.core.connection import connect_settings
from chatlens.core.console import err, out, progress_bar, user_errors
from chatlens.core.errors import ChatlensError
from chatlens.core.keys import check_run_name
from chatlens.core.schemas import ProduceCounts
from chatlens.core.settings import Settings, get_settings
from chatlens.core.store import MessageStats, RunStore
from producer.cleaning import clean, write_rejects
from producer.enqueue import enqueue_messages, queues_without_workers, record_run, to_messages
from producer.reader import Columns, read_messages
from producer.rows import Format
from producer.sampling import stratified_sample, stratified_split
from producer.stream_cli import STDIN, Sample, produce_stream
from producer.summaries import conversations, enqueue_summaries


class Split(StrEnum):
    all = "all"
    train = "train"
    test = "test"


@user_errors
def produce(
    file: Path = typer.Argument(..., help="CSV, JSONL or Parquet file of messages; - reads stdin"),
    run: str = typer.Option(..., "--run", help="run name: results and eval are kept per run"),
    # Ranges are checked in produce_file, so a wrong value is one line rather than click's usage box.
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
        None, "--format", help="jsonl or csv (with a header) for stdin/--follow [default: sniffed]"
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
    columns = Columns(id_column, message_column, label_column)
    if file == STDIN or follow or _streamed(file, settings, split, out_dir):
        if not 0.0 < sample_frac <= 1.0:
            raise ChatlensError(f"--sample-frac must be 0 < frac <= 1 (got {sample_frac}); 1 keeps every row")
        if not 0.0 < test_frac < 1.0:
            raise ChatlensError(f"--test-frac must be 0 < frac < 1 (got {test_frac}); 0.3 holds out 30%")
        chosen = Sample(sample_frac, test_frac, seed, split.value)
        sampled = sample_frac < 1.0 or split is not Split.all
        if sampled and (file == STDIN or follow):
            raise ChatlensError("--sample-frac/--split need the whole input: give a file, not a stream")
        produce_stream(
            settings,
            file,
            run,
            input_format,
            follow,
            columns,
            out_dir,
            redis_url,
            sample=chosen if sampled else None,
        )
        return
    produce_file(
        settings,
        file,
        run,
        sample_frac,
        test_frac,
        split,
        seed,
        out_dir,
        columns,
        redis_url,
    )


def _streamed(file: Path, settings: Settings, split: Split, out_dir: Path | None) -> bool:
    """A large file is read in chunks (bounded memory; twice for a sample or split): the same ids,
    counts and sample as a whole-file read, with the row-level checks (the file-level ones on its head
    only). A split written out as CSVs (--out-dir) is read whole."""
    if not file.is_file() or (split is not Split.all and out_dir is not None):
        return False
    return file.stat().st_size >= settings.stream_file_mb * 1024 * 1024


def produce_file(
    settings: Settings,
    file: Path,
    run: str,
    sample_frac: float = 1.0,
    test_frac: float = 0.3,
    split: Split = Split.all,
    seed: int = 0,
    out_dir: Path | None = None,
    columns: Columns = Columns(),
    redis_url: str | None = None,
    warn_idle_queues: bool = True,
) -> ProduceCounts:
    try:
        check_run_name(run)
    except ValueError as exc:
        raise ChatlensError(str(exc)) from None
    if not 0.0 < sample_frac <= 1.0:  # also catches nan, which fails every comparison
        raise ChatlensError(f"--sample-frac must be 0 < frac <= 1 (got {sample_frac}); 1 keeps every row")
    if not 0.0 < test_frac < 1.0:
        raise ChatlensError(f"--test-frac must be 0 < frac < 1 (got {test_frac}); 0.3 holds out 30%")
    # Unknown backend names stop here, before a job lands on a queue no worker will ever serve.
    for name in settings.classifiers:
        CLASSIFIERS.check(name)
    if settings.summarise:
        SUMMARISERS.check(settings.summary_backend)

    frame = read_messages(file, columns)
    cleaned = clean(frame, settings.max_message_chars)
    rows = stratified_sample(cleaned.rows, sample_frac, seed)
    train, test = stratified_split(rows, test_frac, seed)
    chosen = {Split.all: rows, Split.train: train, Split.test: test}[split]
    if cleaned.rows.shape[0] and chosen.empty:
        raise ChatlensError(
            f"--sample-frac {sample_frac} / --split {split.value} --test-frac {test_frac} select none of "
            f"the {len(cleaned.rows)} clean rows of {file}; raise the fraction (nothing was written)"
        )
    messages = to_messages(chosen)
    # Connect before writing anything, so an unreachable Redis leaves no files behind.
    connection = connect_settings(settings, redis_url)

    rejects_path = (out_dir or Path.cwd()) / f"chatlens-rejects-{run}.csv"
    if cleaned.rejects:
        write_rejects(rejects_path, cleaned.rejects)
    if out_dir is not None and split is not Split.all:
        _write_split(out_dir, train, test, columns)

    with progress_bar() as progress:
        task = progress.add_task(f"enqueue {run}", total=max(1, -(-len(messages) // settings.batch_size)))
        outcome = enqueue_messages(
            connection, settings, run, messages, on_batch=lambda n: progress.advance(task, n)
        )
        progress.update(task, total=max(1, outcome.batches), completed=outcome.batches)
        summarised = 0
        if settings.summarise and outcome.conversations:
            # Every message of these conversations is enqueued now; a conversation that grew gets a
            # fresh summary of all its turns, the ones stored by an earlier produce included.
            pool = (
                messages
                if not outcome.already_present
                else RunStore(connection, settings.result_ttl_s).messages(run).values()
            )
            items = conversations(run, (m for m in pool if m.conversation_id in outcome.conversations))
            task = progress.add_task(f"summaries ({settings.summary_backend})", total=len(items))
            summarised = enqueue_summaries(
                connection, settings, items, settings.summary_backend, lambda n: progress.advance(task, n)
            )
    record_run(connection, settings.result_ttl_s, run, str(file), settings.classifiers)

    counts = ProduceCounts(
        read=len(frame),
        dropped_missing=cleaned.dropped_missing,
        dropped_duplicate=cleaned.dropped_duplicate,
        rejected=len(cleaned.rejects),
        not_selected=len(cleaned.rows) - len(chosen),
        enqueued=outcome.enqueued,
        already_present=outcome.already_present,
        batches=outcome.batches,
        conversations=summarised,
    )
    out.print(counts.line(), highlight=False, soft_wrap=True)
    if cleaned.rejects:
        err.print(f"rejected rows are listed in {rejects_path}", highlight=False, soft_wrap=True)
    idle = (
        queues_without_workers(connection, queues.default_queues(settings))
        if outcome.batches and warn_idle_queues
        else []
    )
    if idle:
        err.print(
            f"[yellow]warning:[/] no live worker on {', '.join(idle)}; start one with "
            f"`chatlens worker --queue {idle[0]}`",
            highlight=False,
            soft_wrap=True,
        )
    return counts


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
    store_messages = None
    if file is not None:
        cleaned = clean(
            read_messages(file, Columns(id_column, message_column, label_column)), settings.max_message_chars
        )
        store_messages = to_messages(cleaned.rows)
        if cleaned.rejects:
            err.print(
                f"{len(cleaned.rejects)} rows rejected (first: row {cleaned.rejects[0].row}: "
                f"{cleaned.rejects[0].field}: {cleaned.rejects[0].reason}); "
                "`chatlens produce` lists them all",
                highlight=False,
                soft_wrap=True,
            )
    connection = connect_settings(settings, redis_url)
    store = RunStore(connection, settings.result_ttl_s)
    if store_messages is not None:
        present = store.existing_ids(run, [m.id for m in store_messages])
        new = [m for m in store_messages if m.id not in present]
        stats = MessageStats()
        for m in new:
            stats.add(m.id, m.label)
        with connection.pipeline() as pipe:
            store.add_new_messages(pipe, run, {m.id: m.model_dump_json() for m in new}, stats)
            pipe.execute()
        # The messages are kept so that `--run` can re-summarise and `eval` can score; no classify jobs.
        record_run(connection, settings.result_ttl_s, run, str(file), classifiers=[])
    elif store.run_info(run) is None:
        raise ChatlensError(f"no run named {run!r} in Redis; give a FILE, or produce the run first")
    items = conversations(run, store.messages(run).values())
    with progress_bar() as progress:
        task = progress.add_task(f"summaries ({chosen})", total=len(items))
        count = enqueue_summaries(connection, settings, items, chosen, lambda n: progress.advance(task, n))
    out.print(
        f"enqueued {count} conversations on {queues.summarise_queue(chosen)}", highlight=False, soft_wrap=True
    )
    idle = queues_without_workers(connection, [queues.summarise_queue(chosen)])
    if idle:
        err.print(
            f"[yellow]warning:[/] no live worker on {idle[0]}; "
            f"start one with `chatlens worker --queue {idle[0]}`",
            highlight=False,
            soft_wrap=True,
        )


def _write_split(out_dir: Path, train: pd.DataFrame, test: pd.DataFrame, columns: Columns) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("test", test)):
        frame = part.rename(
            columns={
                "conversation_id": columns.conversation_id,
                "message": columns.message,
                "label": columns.label,
            }
        )[[columns.conversation_id, columns.message, columns.label]]
        with tempfile.NamedTemporaryFile(
            "w", dir=out_dir, suffix=".tmp", delete=False, encoding="utf-8"
        ) as h:
            frame.to_csv(h, index=False)
        os.replace(h.name, out_dir / f"{name}.csv")
