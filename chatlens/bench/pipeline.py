"""`chatlens bench`: the default model three ways on the same messages, in one run.

(a) bare: the classifier called in-process on all messages (length-sorted batches);
(b) pipeline: produce -> Redis -> one worker subprocess -> results, timed from the first enqueue
    to the last result, with the worker's model already loaded;
(c) seed-style: a transformers `pipeline` called one message at a time, as the original notebooks did.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
import torch

from chatlens.backends.classifiers.minilm import MiniLMClassifier
from chatlens.backends.encoder import Pooling, mean_pool
from chatlens.bench.redis_server import RedisServer
from chatlens.core import keys, queues
from chatlens.core.connection import connect
from chatlens.core.errors import ChatlensError
from chatlens.core.settings import Settings
from chatlens.core.store import RunStore

MODEL = "default"  # the classifier timed, by its registry key: its queue and the name of its results


def load_texts(path: Path, count: int) -> list[str]:
    return load_labelled(path, count)[0]


def load_labelled(path: Path, count: int) -> tuple[list[str], list[str | None]]:
    """The first `count` messages and their labels (None where a row has none)."""
    from producer.table import read_table

    rows = read_table(path).rows
    texts, labels = rows["message"].tolist(), [x if isinstance(x, str) else None for x in rows["label"]]
    if not texts:
        raise ChatlensError(f"{path}: no messages to benchmark on")
    while len(texts) < count:  # a small file is repeated to reach --messages
        texts, labels = texts + texts, labels + labels
    return texts[:count], labels[:count]


def bare_rate(classifier: MiniLMClassifier, texts: list[str]) -> tuple[float, list[str]]:
    classifier.predict(texts[:64])  # warm-up: first calls allocate
    started = time.perf_counter()
    outputs = classifier.predict(texts)
    return len(texts) / (time.perf_counter() - started), [o.label for o in outputs]


def seed_style_rate(classifier: MiniLMClassifier, texts: list[str]) -> tuple[float, list[str]]:
    """A transformers pipeline, one message per call, as the original notebooks ran their models."""
    from transformers import FeatureExtractionPipeline

    pooling = classifier.head.config.pooling

    class PooledFeatures(FeatureExtractionPipeline):
        # The stock pipeline returns the last layer's token vectors; our head reads pooled features.
        def _forward(self, model_inputs: dict) -> object:
            return self.model(**model_inputs, output_hidden_states=pooling is Pooling.LAYER_MEANS)

        def postprocess(self, model_outputs: Any, return_tensors: bool = False) -> torch.Tensor:
            states = model_outputs.hidden_states if pooling is Pooling.LAYER_MEANS else model_outputs[:1]
            mask = torch.ones(states[0].shape[:2], dtype=torch.long)
            return torch.cat([mean_pool(h, mask) for h in states], dim=1)

    from chatlens.backends.encoder import SentenceEncoder
    from chatlens.backends.head_module import load_head

    head = load_head(classifier.head_dir)
    encoder = classifier.encoder
    if not isinstance(encoder, SentenceEncoder):
        raise ChatlensError("the seed-style figure runs the torch runtime's encoder")
    extractor = PooledFeatures(model=encoder.model, tokenizer=encoder.tokenizer, device="cpu")
    kwargs = {"tokenize_kwargs": {"truncation": True, "max_length": encoder.max_length}}

    def one(text: str) -> str:
        with torch.inference_mode():
            return classifier.labels[int(head.adjusted_logits(extractor(text, **kwargs)).argmax())]

    for text in texts[:16]:
        one(text)
    started = time.perf_counter()
    labels = [one(text) for text in texts]
    return len(texts) / (time.perf_counter() - started), labels


class PipelineWorker:
    """One worker process with its model loaded; times passes through produce -> Redis -> worker."""

    def __init__(self, settings: Settings, url: str, worker: subprocess.Popen) -> None:
        self.settings, self.worker = settings, worker
        self.connection = connect(url)
        self.store = RunStore(self.connection, settings.result_ttl_s)
        self.process = f"{socket.gethostname()}:{worker.pid}"
        self.load_key = f"{self.process}:{MODEL}"

    def measure(self, texts: list[str]) -> dict:
        from chatlens.core.schemas import message_id
        from producer.cleaning import Ready
        from producer.flush import BatchWriter
        from producer.stream import BATCHES_PER_FLUSH

        run = f"bench-{time.time_ns()}"
        messages: list[Ready] = [
            (message_id(str(i), 0, text), str(i), 0, text, None, None) for i, text in enumerate(texts)
        ]
        writer = BatchWriter(self.connection, self.settings, run, max_queued=10**9)
        step = self.settings.batch_size * BATCHES_PER_FLUSH
        started = time.perf_counter()
        for start in range(0, len(messages), step):
            writer.write(messages[start : start + step])
        done = lambda: self.store.result_count(run, MODEL) >= len(messages)  # noqa: E731
        _wait(done, self.worker, "the results")
        elapsed = time.perf_counter() - started
        predictions = self.store.predictions(run, MODEL)
        return {"rate": len(messages) / elapsed, "labels": [predictions[m[0]].label for m in messages]}

    def stats(self) -> dict:
        return {
            "rss_mb": float(self.connection.hget(keys.WORKER_PEAK_RSS, self.process) or 0),
            "model_loads": int(self.connection.hget(keys.MODEL_LOADS, self.load_key) or 0),
        }


@contextmanager
def pipeline_worker(settings: Settings, url: str, threads: int, count: int = 1) -> Iterator[PipelineWorker]:
    """Start `count` worker processes and wait for their models before anything is timed (the harness
    watches the first; all of them serve the queue)."""
    env = {**os.environ, "CHATLENS_REDIS_URL": url, "CHATLENS_CLASSIFIERS": MODEL}
    command = [sys.executable, "-m", "worker", "--queue", queues.classify_queue(MODEL)]
    workers = [
        subprocess.Popen([*command, "--threads", str(threads), "--log-level", "WARNING"], env=env)
        for _ in range(count)
    ]
    try:
        for worker in workers:
            harness = PipelineWorker(settings, url, worker)
            loaded = lambda: bool(harness.connection.hexists(keys.MODEL_LOADS, harness.load_key))  # noqa: E731, B023
            _wait(loaded, worker, "the worker to load its model")
        yield PipelineWorker(settings, url, workers[0])
    finally:
        _stop(workers)


def _stop(workers: list[subprocess.Popen]) -> None:
    """SIGTERM, then a second one (RQ's cold shutdown: an idle worker's warm shutdown waits out its
    blocking dequeue), then SIGKILL: every result is in by now, and the bench should end."""
    for send, wait_s in (
        (subprocess.Popen.terminate, 5.0),
        (subprocess.Popen.terminate, 30.0),
        (subprocess.Popen.kill, 30.0),
    ):
        running = [worker for worker in workers if worker.poll() is None]
        for worker in running:
            send(worker)
        deadline = time.monotonic() + wait_s
        for worker in running:
            with suppress(subprocess.TimeoutExpired):
                worker.wait(max(0.0, deadline - time.monotonic()))


def scaling(settings: Settings, url: str, texts: list[str], repeat: int) -> dict:
    """2 workers x 1 thread against 1 worker x 1 thread on the same messages: best of `repeat` each."""
    rates: dict[int, list[float]] = {}
    for count in (1, 2):
        with pipeline_worker(settings, url, threads=1, count=count) as harness:
            rates[count] = [harness.measure(texts)["rate"] for _ in range(repeat)]
    one, two = max(rates[1]), max(rates[2])
    return {
        "one_worker_1_thread_msgs_per_s": round(one, 1),
        "two_workers_1_thread_msgs_per_s": round(two, 1),
        "two_workers_over_one": round(two / one, 3),
    }


def _wait(condition: Callable[[], bool], worker: subprocess.Popen, what: str, timeout: float = 1800) -> None:
    # Polling at 20 Hz: polling faster steals time from the worker's torch threads on a small machine.
    deadline = time.monotonic() + timeout
    while not condition():
        if worker.poll() is not None:
            raise ChatlensError(f"the worker exited (code {worker.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise ChatlensError(f"timed out waiting for {what}")
        time.sleep(0.05)


def run_bench(
    settings: Settings,
    texts: list[str],
    threads: int,
    redis_url: str | None,
    repeat: int = 3,
    with_scaling: bool = True,
    producer_messages: int = 200_000,
) -> dict:
    """Best of `repeat` interleaved rounds: the load of a shared machine drifts from minute to minute, and
    every variant should see the same drift."""
    torch.set_num_threads(threads)
    # Bare runs what the pipeline's worker serves (CHATLENS_RUNTIME); seed-style is torch by definition.
    # `chatlens bench --runtimes` compares the runtimes themselves.
    classifier = MiniLMClassifier(
        settings.head_path, settings.encoder_path, settings.inference_batch_size, runtime=settings.runtime,
        models_dir=settings.models_dir, exports_dir=settings.exports_path, threads=threads,
    )  # fmt: skip
    seed_classifier = MiniLMClassifier(
        settings.head_path, settings.encoder_path, settings.inference_batch_size
    )
    rates: dict[str, list[float]] = {"bare": [], "pipeline": [], "seed_style": []}
    labels: dict[str, list[str]] = {}
    with ExitStack() as stack:
        url = redis_url or stack.enter_context(RedisServer()).url
        harness = stack.enter_context(pipeline_worker(settings, url, threads))
        for _ in range(repeat):
            rate, labels["bare"] = bare_rate(classifier, texts)
            rates["bare"].append(rate)
            result = harness.measure(texts)
            rates["pipeline"].append(result["rate"])
            labels["pipeline"] = result["labels"]
            rate, labels["seed_style"] = seed_style_rate(seed_classifier, texts)
            rates["seed_style"].append(rate)
        stats = harness.stats()
    if with_scaling:
        with ExitStack() as stack:
            url = redis_url or stack.enter_context(RedisServer()).url
            scaled = scaling(settings, url, texts, repeat)
    with RedisServer() as private:  # the producer figures empty their Redis: always a private one
        from chatlens.bench.producer import run_producer_bench

        produced = run_producer_bench(settings, private.url, texts, producer_messages)
    best = {name: max(values) for name, values in rates.items()}
    return {
        "messages": len(texts),
        "threads": threads,
        "repeat": repeat,
        "batch_size": settings.batch_size,
        "inference_batch_size": settings.inference_batch_size,
        "runtime": classifier.encoder.runtime,  # of bare and pipeline; seed-style is torch
        "bare_msgs_per_s": round(best["bare"], 1),
        "pipeline_msgs_per_s": round(best["pipeline"], 1),
        "seed_style_msgs_per_s": round(best["seed_style"], 1),
        "pipeline_over_bare": round(best["pipeline"] / best["bare"], 3),
        "pipeline_over_seed_style": round(best["pipeline"] / best["seed_style"], 3),
        "worker_rss_mb": round(stats["rss_mb"], 1),
        "model_loads": stats["model_loads"],
        "all_rounds_msgs_per_s": {name: [round(v, 1) for v in values] for name, values in rates.items()},
        # The same labels three ways is the check that all three computed the same model.
        "agreement_pipeline_vs_bare": _agreement(labels["pipeline"], labels["bare"]),
        "agreement_seed_style_vs_bare": _agreement(labels["seed_style"], labels["bare"]),
        **(scaled if with_scaling else {}),
        **produced,
    }


def _agreement(a: list[str], b: list[str]) -> float:
    return round(float(np.mean(np.array(a) == np.array(b))), 4)


def plot_bench(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = ["bare (in-process)", "pipeline (Redis+worker)", "seed-style (pipeline, 1 by 1)"]
    values = [result["bare_msgs_per_s"], result["pipeline_msgs_per_s"], result["seed_style_msgs_per_s"]]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    bars = ax.barh(names, values, color=["#4c72b0", "#55a868", "#c44e52"])
    ax.bar_label(bars, fmt="%.0f msg/s", padding=3)
    ax.set_xlabel("messages per second")
    ax.set_title(f"MiniLM default, {result['messages']} messages, {result['threads']} threads")
    ax.set_xlim(0, max(values) * 1.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def save(result: dict, json_path: Path | None) -> None:
    """The figures as JSON at `json_path`, and beside it a PNG of the messages/s where there are several."""
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        if "msgs_per_s" in result:
            plot_variants(result, json_path.with_suffix(".png"))
        elif "bare_msgs_per_s" in result:
            plot_bench(result, json_path.with_suffix(".png"))


def plot_variants(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, values = list(result["msgs_per_s"]), list(result["msgs_per_s"].values())
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(names) + 1.2))
    bars = ax.barh(names, values, color="#4c72b0")
    ax.bar_label(bars, fmt="%.1f msg/s", padding=3)
    ax.set_xlabel("messages per second")
    ax.set_title(
        f"{result['backend']} on {result['device']}, {result['threads']} threads, {result['weights']}"
    )
    ax.set_xlim(0, max(values) * 1.35)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
