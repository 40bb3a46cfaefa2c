"""`chatlens bench`: the default model three ways on the same messages, in one run.

(a) bare: the classifier called in-process on all messages (length-sorted batches);
(b) pipeline: produce -> Redis -> one worker subprocess -> results, timed from the first enqueue
    to the last result, with the worker's model already loaded;
(c) seed-style: a transformers `pipeline` called one message at a time, as the original notebooks did.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from redis import Redis

from chatlens import keys
from chatlens.connection import connect
from chatlens.errors import ChatlensError
from chatlens.settings import Settings
from chatlens.store import RunStore
from worker.classifier import MiniLMClassifier


def load_texts(path: Path, count: int) -> list[str]:
    from producer.cleaning import clean
    from producer.reader import Columns, read_messages

    rows = clean(read_messages(path, Columns()), max_chars=10**9).rows
    texts = rows["message"].tolist()
    if not texts:
        raise ChatlensError(f"{path}: no messages to benchmark on")
    while len(texts) < count:  # a small file is repeated to reach --messages
        texts += texts
    return texts[:count]


def bare_rate(classifier: MiniLMClassifier, texts: list[str]) -> tuple[float, list[str]]:
    classifier.predict(texts[:64])  # warm-up: first calls allocate
    started = time.perf_counter()
    outputs = classifier.predict(texts)
    return len(texts) / (time.perf_counter() - started), [o.label for o in outputs]


def seed_style_rate(
    classifier: MiniLMClassifier, texts: list[str], encoder_path: str
) -> tuple[float, list[str]]:
    from transformers import pipeline

    extractor = pipeline("feature-extraction", model=encoder_path, tokenizer=encoder_path, device="cpu")
    head = classifier.head

    def one(text: str) -> str:
        tokens = torch.tensor(extractor(text, tokenize_kwargs={"truncation": True, "max_length": 256})[0])
        pooled = torch.nn.functional.normalize(tokens.mean(dim=0, keepdim=True), dim=1)
        with torch.inference_mode():
            return classifier.labels[int(head.adjusted_logits(pooled).argmax())]

    for text in texts[:16]:
        one(text)
    started = time.perf_counter()
    labels = [one(text) for text in texts]
    return len(texts) / (time.perf_counter() - started), labels


@contextmanager
def private_redis() -> Iterator[str]:
    """A throw-away redis-server on a free port, so the bench never touches a shared instance."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ChatlensError(
            "redis-server not found; install it (apt-get install redis-server) or pass --redis-url"
        )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as workdir:
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                workdir,
            ],
            stdout=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            for _ in range(100):
                try:
                    Redis.from_url(url).ping()
                    break
                except Exception:
                    time.sleep(0.05)
            yield url
        finally:
            proc.terminate()
            proc.wait(10)


def pipeline_rate(texts: list[str], settings: Settings, url: str, threads: int) -> dict:
    import pandas as pd

    from producer.enqueue import enqueue_messages, to_messages

    connection = connect(url)
    env = {**os.environ, "CHATLENS_REDIS_URL": url, "CHATLENS_CLASSIFIERS": "default"}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "worker",
            "--queue",
            keys.classify_queue("default"),
            "--threads",
            str(threads),
            "--log-level",
            "WARNING",
        ],
        env=env,
    )
    try:
        load_key = f"{socket.gethostname()}:{worker.pid}:{MiniLMClassifier.name}"
        _wait(lambda: connection.hexists(keys.MODEL_LOADS, load_key), worker, "the worker to load its model")
        run = f"bench-{int(time.time())}"
        rows = pd.DataFrame(
            {
                "conversation_id": [str(i) for i in range(len(texts))],
                "position": 0,
                "message": texts,
                "label": None,
            }
        )
        messages = to_messages(rows)
        store = RunStore(connection, settings.result_ttl_s)
        started = time.perf_counter()
        enqueue_messages(connection, settings, run, messages)
        _wait(lambda: store.result_count(run, MiniLMClassifier.name) >= len(messages), worker, "the results")
        elapsed = time.perf_counter() - started
        predictions = store.predictions(run, MiniLMClassifier.name)
        labels = [predictions[m.id].label for m in messages]
        worker_name = f"{socket.gethostname()}:{worker.pid}"
        return {
            "rate": len(messages) / elapsed,
            "labels": labels,
            "rss_mb": float(connection.hget(keys.WORKER_PEAK_RSS, worker_name) or 0),
            "model_loads": int(connection.hget(keys.MODEL_LOADS, load_key) or 0),
        }
    finally:
        worker.terminate()
        worker.wait(30)


def _wait(condition, worker: subprocess.Popen, what: str, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if worker.poll() is not None:
            raise ChatlensError(f"the worker exited (code {worker.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise ChatlensError(f"timed out waiting for {what}")
        time.sleep(0.01)


def run_bench(settings: Settings, file: Path, count: int, threads: int, redis_url: str | None) -> dict:
    torch.set_num_threads(threads)
    texts = load_texts(file, count)
    classifier = MiniLMClassifier(settings.head_path, settings.encoder_path, settings.inference_batch_size)
    bare, bare_labels = bare_rate(classifier, texts)
    if redis_url:
        pipe = pipeline_rate(texts, settings, redis_url, threads)
    else:
        with private_redis() as url:
            pipe = pipeline_rate(texts, settings, url, threads)
    from worker.encoder import resolve_encoder

    seed, seed_labels = seed_style_rate(classifier, texts, resolve_encoder(settings.encoder_path)[0])
    return {
        "messages": len(texts),
        "threads": threads,
        "batch_size": settings.batch_size,
        "inference_batch_size": settings.inference_batch_size,
        "bare_msgs_per_s": round(bare, 1),
        "pipeline_msgs_per_s": round(pipe["rate"], 1),
        "seed_style_msgs_per_s": round(seed, 1),
        "pipeline_over_bare": round(pipe["rate"] / bare, 3),
        "pipeline_over_seed_style": round(pipe["rate"] / seed, 3),
        "worker_rss_mb": round(pipe["rss_mb"], 1),
        "model_loads": pipe["model_loads"],
        # Same labels three ways is the check that all three computed the same model.
        "agreement_pipeline_vs_bare": float(np.mean(np.array(pipe["labels"]) == np.array(bare_labels))),
        "agreement_seed_style_vs_bare": float(np.mean(np.array(seed_labels) == np.array(bare_labels))),
    }


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
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        plot_bench(result, json_path.with_suffix(".png"))
