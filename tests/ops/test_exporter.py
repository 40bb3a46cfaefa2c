"""`chatlens status --serve`: the exporter's gauges equal the queue and run figures in Redis."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
import redis

from chatlens.core import keys
from chatlens.core.settings import Settings
from chatlens.ops.exporter import serve
from tests.fixtures.toy_run import free_port, produce_toy_run
from tests.helpers import metric_sample
from worker.runner import create_worker

pytestmark = pytest.mark.slow


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def test_exporter_gauges_follow_redis(toy_settings: Settings, redis_url: str, tmp_path: Path) -> None:
    connection = redis.Redis.from_url(redis_url)
    produce_toy_run(toy_settings, tmp_path)
    port = free_port()
    server = serve(connection, toy_settings, port, runs=3, address="127.0.0.1")
    try:
        text = scrape(port)
        assert metric_sample(text, "chatlens_queue_depth", '{queue="classify-toy"}') == 3
        assert metric_sample(text, "chatlens_workers", '{queue="classify-toy"}') == 0
        assert metric_sample(text, "chatlens_run_messages", '{run="ops"}') == 5
        create_worker(toy_settings, connection, ["classify-toy"]).work(burst=True, logging_level="WARNING")
        text = scrape(port)
    finally:
        server.shutdown()
        server.server_close()
    assert metric_sample(text, "chatlens_queue_depth", '{queue="classify-toy"}') == connection.llen(
        "rq:queue:classify-toy"
    )
    assert metric_sample(text, "chatlens_queue_failed", '{queue="classify-toy"}') == 0
    assert metric_sample(text, "chatlens_run_results", '{model="toy",run="ops"}') == connection.hlen(
        keys.results("ops", "toy")
    )


def test_metrics_listen_on_the_metrics_host(toy_settings: Settings, redis_url: str) -> None:
    connection = redis.Redis.from_url(redis_url)
    assert Settings().metrics_host == "127.0.0.1"
    port = free_port()
    server = serve(connection, toy_settings, port, runs=1)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.shutdown()
        server.server_close()
    worker_port = free_port()
    settings = toy_settings.model_copy(update={"metrics_port": worker_port, "metrics_host": "127.0.0.1"})
    worker = create_worker(settings, connection, ["classify-toy"])
    try:
        assert worker.context.metrics.server.server_address[:2] == ("127.0.0.1", worker_port)
        assert "chatlens_" in scrape(worker_port)
    finally:
        worker.context.metrics.server.shutdown()
        worker.context.metrics.server.server_close()
