"""`chatlens worker`, `chatlens train` and `chatlens bench`."""

from __future__ import annotations

from pathlib import Path

import typer

from chatlens.connection import connect
from chatlens.console import out, progress_bar, user_errors
from chatlens.errors import ChatlensError
from chatlens.settings import get_settings
from worker.runner import default_queues, run_worker


@user_errors
def worker(
    queue: list[str] | None = typer.Option(
        None, "--queue", "-q", help="queue(s) to serve [default: classify-<each enabled classifier>]"
    ),
    burst: bool = typer.Option(False, help="stop once the queues are empty"),
    threads: int | None = typer.Option(None, min=1, help="torch threads for this worker (see README)"),
    name: str | None = typer.Option(None, help="worker name [default: RQ's]"),
    log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING or ERROR"),
    redis_url: str | None = typer.Option(None, help="overrides CHATLENS_REDIS_URL"),
) -> None:
    """Serve the queues, loading each model once for the life of the process."""
    settings = get_settings()
    connection = connect(redis_url or settings.redis_url)
    run_worker(
        queue or default_queues(settings), settings, connection, burst, threads, name, log_level.upper()
    )


@user_errors
def train(
    train_file: Path | None = typer.Option(
        None, "--train", help="labelled CSV [default: CHATLENS_TRAIN_FILE]"
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", help="where head.safetensors/head.json go [default: the committed head]"
    ),
    epochs: int | None = typer.Option(None, min=1, help="[default: 15]"),
    hidden_dim: int | None = typer.Option(None, min=0, help="0 = a linear head [default: 0]"),
    class_weight_power: float | None = typer.Option(
        None, min=0.0, max=1.0, help="loss weight ~ (1/class frequency)^power [default: 0.5]"
    ),
    tune_adjustment: bool = typer.Option(True, help="tune the logit adjustment's tau on validation"),
    val_frac: float | None = typer.Option(None, min=0.01, max=0.5, help="[default: 0.15]"),
    seed: int | None = typer.Option(None, help="[default: 0]"),
    threads: int | None = typer.Option(None, min=1, help="torch threads"),
) -> None:
    """Train the default model's head on frozen MiniLM embeddings (validation slice from the train file)."""
    import torch

    from worker.head import DEFAULT_HEAD_DIR
    from worker.train import TrainOptions, train_head

    settings = get_settings()
    if threads:
        torch.set_num_threads(threads)
    chosen = {
        "epochs": epochs,
        "hidden_dim": hidden_dim,
        "class_weight_power": class_weight_power,
        "tune_adjustment": tune_adjustment,
        "val_frac": val_frac,
        "seed": seed,
    }
    options = TrainOptions(
        train_file=train_file or settings.train_file,
        out_dir=out_dir or DEFAULT_HEAD_DIR,
        encoder=settings.encoder_path,
        max_length=settings.max_length,
        **{k: v for k, v in chosen.items() if v is not None},
    )
    with progress_bar() as progress:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            key = stage.split(" ")[0]
            if key not in tasks:
                tasks[key] = progress.add_task(stage, total=total)
            progress.update(tasks[key], completed=done, description=stage)

        result = train_head(options, report)
    v0, v1 = result["validation_before_adjustment"], result["validation"]
    out.print(
        f"validation ({result['validation_rows']} rows): "
        f"accuracy {v0['accuracy']:.3f} / macro-F1 {v0['macro_f1']:.3f} -> "
        f"with logit adjustment (tau {result['tau']:.2f}) {v1['accuracy']:.3f} / {v1['macro_f1']:.3f}; "
        f"{result['seconds']} s ({result['encode_seconds']} s encoding)",
        highlight=False,
        soft_wrap=True,
    )
    out.print(f"head {result['version']} written to {options.out_dir}", highlight=False, soft_wrap=True)


@user_errors
def bench(
    messages: int = typer.Option(
        2000, "--messages", min=32, help="messages measured, the same for every variant"
    ),
    json_file: Path | None = typer.Option(
        None, "--json", help="write the figures here (and a PNG beside it)"
    ),
    file: Path | None = typer.Option(None, help="messages to use [default: CHATLENS_TEST_FILE]"),
    threads: int = typer.Option(2, min=1, help="torch threads, the same for all three"),
    redis_url: str | None = typer.Option(None, help="use this Redis [default: a private redis-server]"),
    repeat: int = typer.Option(3, min=1, help="interleaved rounds; the best of each is reported"),
    backend: str = typer.Option(
        "default", help="default: bare vs pipeline vs seed-style; zeroshot or emotion: variants at full size"
    ),
) -> None:
    """Messages/s: the default model three ways, or an HF backend with and without sdpa/int8/sorting."""
    from worker.bench import load_texts, run_bench, save

    settings = get_settings()
    if backend == "default":
        result = run_bench(settings, file or settings.test_file, messages, threads, redis_url, repeat)
    elif backend in ("zeroshot", "emotion"):
        from worker.backend_bench import run_backend_bench

        texts = load_texts(file or settings.test_file, messages)
        result = run_backend_bench(settings, backend, texts, threads)
    else:
        raise ChatlensError(f"--backend {backend!r}: use default, zeroshot or emotion")
    save(result, json_file)
    for key, value in result.items():
        out.print(f"{key:>30}  {value}", highlight=False, soft_wrap=True)
