"""`chatlens status --serve PORT`: one process that exports queue depths and run progress to Prometheus.

Workers export what they do themselves (worker/metrics.py); what lives only in Redis (queues, runs,
which queues have a live worker) is read here on each scrape through `gather_status`, so a scrape
shows exactly what `chatlens status --json` would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from redis import Redis

from chatlens.core.errors import ChatlensError
from chatlens.core.settings import Settings
from chatlens.ops.status import gather_status


def _families(status: dict[str, Any]) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    depth = GaugeMetricFamily("chatlens_queue_depth", "Jobs waiting in the queue", labels=["queue"])
    failed = GaugeMetricFamily(
        "chatlens_queue_failed", "Jobs in the queue's failed registry", labels=["queue"]
    )
    oldest = GaugeMetricFamily(
        "chatlens_queue_oldest_job_age_seconds", "Age of the oldest waiting job", labels=["queue"]
    )
    workers = GaugeMetricFamily("chatlens_workers", "Live workers serving the queue", labels=["queue"])
    for row in status["queues"]:
        depth.add_metric([row["name"]], row["depth"])
        failed.add_metric([row["name"]], row["failed"])
        oldest.add_metric([row["name"]], row["oldest_age_s"] or 0.0)
        workers.add_metric([row["name"]], row["workers"])
    messages = GaugeMetricFamily("chatlens_run_messages", "Messages produced into the run", labels=["run"])
    results = GaugeMetricFamily(
        "chatlens_run_results", "Messages of the run a model has a result for", labels=["run", "model"]
    )
    errors = GaugeMetricFamily(
        "chatlens_run_errors", "Messages of the run a model failed on", labels=["run", "model"]
    )
    summaries = GaugeMetricFamily("chatlens_run_summaries", "Conversation summaries written", labels=["run"])
    expected = GaugeMetricFamily(
        "chatlens_run_summaries_expected", "Conversation summaries the run expects", labels=["run"]
    )
    failed_jobs = GaugeMetricFamily(
        "chatlens_run_failed_jobs", "Failed jobs naming the run, in any queue", labels=["run"]
    )
    finished = GaugeMetricFamily(
        "chatlens_run_finished", "1 once every result and summary is in or errored", labels=["run"]
    )
    rate = GaugeMetricFamily(
        "chatlens_run_messages_per_second", "Results written over the last minute, per second", labels=["run"]
    )
    regression = GaugeMetricFamily(
        "chatlens_run_eval_regression", "1 if the run's last evaluation flagged a regression", labels=["run"]
    )
    for run in status["runs"]:
        messages.add_metric([run["run"]], run["messages"])
        summaries.add_metric([run["run"]], run["summaries"])
        expected.add_metric([run["run"]], run["summaries_expected"])
        failed_jobs.add_metric([run["run"]], run["failed_jobs"])
        finished.add_metric([run["run"]], 1.0 if run["finished"] else 0.0)
        rate.add_metric([run["run"]], run["messages_per_s"])
        for model, figures in run["models"].items():
            results.add_metric([run["run"], model], figures["done"])
            errors.add_metric([run["run"], model], figures["errors"])
        if run["last_eval"] is not None:
            regression.add_metric([run["run"]], 1.0 if run["last_eval"]["regression"] else 0.0)
    yield from (depth, failed, oldest, workers, messages, results, errors, summaries, expected, failed_jobs)
    yield from (finished, rate, regression)


class StatusCollector:
    """A prometheus_client collector: each scrape reads Redis once."""

    def __init__(self, connection: Redis, settings: Settings, runs: int) -> None:
        self.connection = connection
        self.settings = settings
        self.runs = runs

    def collect(self) -> Iterator[Any]:
        yield from _families(gather_status(self.connection, self.settings, runs=self.runs))


def serve(connection: Redis, settings: Settings, port: int, runs: int, address: str | None = None) -> Any:
    """Start the /metrics HTTP server in a thread; returns the server (tests shut it down)."""
    try:
        from prometheus_client import start_http_server
        from prometheus_client.core import CollectorRegistry
    except ImportError:
        raise ChatlensError(
            "the exporter needs prometheus-client: pip install 'chatlens[worker]' (or prometheus-client)"
        ) from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(connection, settings, runs))
    try:
        server, _thread = start_http_server(port, addr=address or settings.metrics_host, registry=registry)
    except OSError as exc:
        where = f"{address or settings.metrics_host}:{port}"
        raise ChatlensError(f"--serve {port}: cannot listen on {where} ({exc.strerror})") from None
    return server


def serve_forever(connection: Redis, settings: Settings, port: int, runs: int) -> None:
    serve(connection, settings, port, runs)
    while True:
        time.sleep(3600)
