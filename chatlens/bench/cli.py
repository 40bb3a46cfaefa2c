"""`chatlens bench`."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from chatlens.backends.classifier import CLASSIFIERS
from chatlens.core.console import out, user_errors
from chatlens.core.errors import ChatlensError
from chatlens.core.settings import get_settings

BACKENDS = ("default", "zeroshot", "emotion", "producer")
RUNTIMES = ("torch", "torch-int8", "onnx", "onnx-int8")


@user_errors
def bench(
    messages: int = typer.Option(
        2000, "--messages", min=32, help="messages measured, the same for every variant"
    ),
    json_file: Path | None = typer.Option(
        None, "--json", help="write the figures here (and a PNG beside it)"
    ),
    file: Path = typer.Option(..., help="labelled messages to measure on (CSV, JSONL or Parquet)"),
    threads: int = typer.Option(2, min=1, help="torch threads, the same for all three"),
    redis_url: str | None = typer.Option(None, help="use this Redis [default: a private redis-server]"),
    repeat: int = typer.Option(3, min=1, help="interleaved rounds; the best of each is reported"),
    backend: str = typer.Option(
        "default",
        help="default: bare vs pipeline vs seed-style, 2 workers vs 1, producer; zeroshot or emotion: "
        "variants at full size; producer: the producer figures alone",
    ),
    scaling: bool = typer.Option(True, help="also time 2 workers x 1 thread against 1 worker x 1 thread"),
    producer_messages: int = typer.Option(200_000, min=1_000, help="messages the producer figures use"),
    runtimes: str | None = typer.Option(
        None,
        help="compare these runtimes side by side instead (torch, torch-int8, onnx, onnx-int8, comma-"
        "separated): messages/s, peak RSS, labels vs torch and, where the file has labels, accuracy/macro-F1",
    ),
    classifiers: str = typer.Option("default", help="with --runtimes: the classifiers, comma-separated"),
) -> None:
    """Messages/s: the default model three ways, or an HF backend with and without sdpa/int8/sorting."""
    if backend not in BACKENDS:
        raise ChatlensError(f"--backend {backend!r}: use {', '.join(BACKENDS[:-1])} or {BACKENDS[-1]}")
    if redis_url is not None and backend == "default":
        from chatlens.core.connection import connect

        connect(redis_url).close()  # a wrong URL or an unreachable server: one line now, before any work
    from chatlens.bench.pipeline import load_labelled, load_texts, run_bench, save

    if runtimes is not None:
        from chatlens.bench.runtimes import run_runtimes_bench

        chosen = [r.strip() for r in runtimes.split(",") if r.strip()]
        unknown = [r for r in chosen if r not in RUNTIMES]
        if not chosen or unknown:
            raise ChatlensError(f"--runtimes {runtimes!r}: use some of {', '.join(RUNTIMES)}")
        names = [n.strip() for n in classifiers.split(",") if n.strip()]
        for name in names:
            CLASSIFIERS.check(name)
        texts, truth = load_labelled(file, messages)
        result = run_runtimes_bench(names, chosen, texts, truth, threads, repeat)
        if json_file is not None:
            json_file.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        for name, figures in result["classifiers"].items():
            for runtime, row in figures["runtimes"].items():
                shown = {k: v for k, v in row.items() if k not in ("all_rounds_msg_per_s", "version")}
                out.print(f"{name:>10} {runtime:>10}  {shown}", highlight=False, soft_wrap=True)
        return
    settings = get_settings()
    # The producer figures cycle through up to 5,000 distinct texts, whatever --messages says.
    texts = load_texts(file, 5_000 if backend == "producer" else messages)
    if backend == "default":
        result = run_bench(settings, texts, threads, redis_url, repeat, scaling, producer_messages)
    elif backend == "producer":
        from chatlens.bench.producer import run_producer_bench
        from chatlens.bench.redis_server import RedisServer

        with RedisServer() as server:
            result = run_producer_bench(settings, server.url, texts, producer_messages, repeat)
    else:
        from chatlens.bench.backends import run_backend_bench

        result = run_backend_bench(settings, backend, texts, threads)
    save(result, json_file)
    for key, value in result.items():
        out.print(f"{key:>30}  {value}", highlight=False, soft_wrap=True)
