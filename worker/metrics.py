"""`WorkerMetrics`: what one worker process has done, as Prometheus metrics on /metrics (when a port
is set) and as one INFO progress line every `progress_log_s` seconds while it is busy.

Every chatlens_* series of a worker is defined here (docs/guide/operating.md, "Prometheus metrics", lists
them with queries).
prometheus-client is imported only when the worker serves /metrics, so a worker without the port set
(or an eval host without the package) needs none of it.
"""

from __future__ import annotations

import logging
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from chatlens.core.errors import ChatlensError

log = logging.getLogger("chatlens.worker")

# Batch latencies run from milliseconds (tiny batches of the bundled MiniLM) to minutes (zero-shot on CPU).
BATCH_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def peak_rss_bytes() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(peak if sys.platform == "darwin" else peak * 1024)  # bytes on macOS, KiB on Linux


@dataclass
class _Window:
    """Counts since the last progress line."""

    started: float = field(default_factory=time.monotonic)
    batches: int = 0
    messages: int = 0
    errors: int = 0
    summaries: int = 0
    by_model: dict[str, int] = field(default_factory=dict)  # classifier key -> messages classified


class WorkerMetrics:
    def __init__(self, progress_log_s: float = 30.0, name: str = "") -> None:
        self.progress_log_s = progress_log_s
        self.name = name
        self.window = _Window()
        self.classified: dict[str, int] = {}  # model -> messages classified, for the life of the process
        self.loads: dict[str, int] = {}  # model -> loads in this process
        self._prom: dict[str, Any] | None = None
        self.server: Any = None

    # -- Prometheus --------------------------------------------------------------------------------
    def serve(self, port: int, address: str = "127.0.0.1") -> None:
        """Serve /metrics on `port` from a thread of this process."""
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
        except ImportError:
            raise ChatlensError(
                "--metrics-port needs prometheus-client: pip install 'chatlens[worker]'"
            ) from None
        registry = CollectorRegistry(auto_describe=True)
        self._prom = {
            "classified": Counter(
                "chatlens_messages_classified", "Messages a model classified", ["model"], registry=registry
            ),
            "errors": Counter(
                "chatlens_message_errors", "Messages a model failed on", ["model"], registry=registry
            ),
            "summaries": Counter(
                "chatlens_summaries_written", "Conversation summaries written", ["backend"], registry=registry
            ),
            "batch_seconds": Histogram(
                "chatlens_batch_seconds",
                "Time to classify one micro-batch",
                ["model"],
                buckets=BATCH_SECONDS_BUCKETS,
                registry=registry,
            ),
            "batch_size": Histogram(
                "chatlens_batch_size",
                "Messages per micro-batch",
                buckets=BATCH_SIZE_BUCKETS,
                registry=registry,
            ),
            "loads": Counter(
                "chatlens_model_loads", "Models loaded by this process", ["model"], registry=registry
            ),
        }
        rss = Gauge("chatlens_worker_rss_bytes", "Peak resident set size of the worker", registry=registry)
        rss.set_function(peak_rss_bytes)
        for model, n in self.classified.items():  # what happened before the port opened (preloads)
            self._prom["classified"].labels(model=model).inc(n)
        for model, n in self.loads.items():
            self._prom["loads"].labels(model=model).inc(n)
        try:
            self.server, _thread = start_http_server(port, addr=address, registry=registry)
        except OSError as exc:
            raise ChatlensError(f"metrics port {port}: cannot listen on it ({exc.strerror})") from None
        log.info("serving Prometheus metrics on %s:%d/metrics", address, port)

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # -- what the jobs report ------------------------------------------------------------------------
    def model_loaded(self, model: str) -> None:
        self.loads[model] = self.loads.get(model, 0) + 1
        if self._prom is not None:
            self._prom["loads"].labels(model=model).inc()

    def batch(self, model: str, size: int, seconds: float, classified: int, errors: int) -> None:
        self.classified[model] = self.classified.get(model, 0) + classified
        if self._prom is not None:
            self._prom["classified"].labels(model=model).inc(classified)
            self._prom["errors"].labels(model=model).inc(errors)
            self._prom["batch_seconds"].labels(model=model).observe(seconds)
            self._prom["batch_size"].observe(size)
        self.window.batches += 1
        self.window.messages += classified
        self.window.errors += errors
        self.window.by_model[model] = self.window.by_model.get(model, 0) + classified
        self._maybe_log()

    def summary(self, backend: str) -> None:
        if self._prom is not None:
            self._prom["summaries"].labels(backend=backend).inc()
        self.window.summaries += 1
        self._maybe_log()

    # -- the progress line ---------------------------------------------------------------------------
    def _maybe_log(self) -> None:
        elapsed = time.monotonic() - self.window.started
        if elapsed < self.progress_log_s:
            return
        w = self.window
        rate = w.messages / elapsed if elapsed > 0 else 0.0
        # A worker serving several classify queues: each model's share, under its one name.
        models = ", ".join(f"{m} {n}" for m, n in w.by_model.items())
        log.info(
            "progress %s: %d batches, %d messages (%d errors)%s, %d summaries in %.0fs: %.1f msg/s",
            self.name,
            w.batches,
            w.messages,
            w.errors,
            f" [{models}]" if models else "",
            w.summaries,
            elapsed,
            rate,
            extra={
                "worker": self.name,
                "batches": w.batches,
                "messages": w.messages,
                "errors": w.errors,
                "models": dict(w.by_model),
                "summaries": w.summaries,
                "messages_per_s": round(rate, 2),
            },
        )
        self.window = _Window()
