"""A worker with a metrics port serves chatlens_* series that match what it wrote to Redis."""

from __future__ import annotations

import json
import logging
import urllib.request
from pathlib import Path

import pytest
import redis

from chatlens.core import keys
from chatlens.core.settings import Settings
from tests.fixtures.toy_run import free_port, produce_toy_run, toy_settings_for
from tests.helpers import metric_sample
from worker.logs import JsonFormatter, PerJobToDebug
from worker.metrics import WorkerMetrics
from worker.runner import create_worker


@pytest.mark.slow
def test_worker_metrics_count_what_it_classified(redis_url: str, tmp_path: Path) -> None:
    with toy_settings_for(redis_url) as toy_settings:
        check_worker_metrics(toy_settings, tmp_path)


def check_worker_metrics(toy_settings: Settings, tmp_path: Path) -> None:
    connection = redis.Redis.from_url(toy_settings.redis_url)
    produce_toy_run(toy_settings, tmp_path)
    port = free_port()
    settings = toy_settings.model_copy(update={"metrics_port": port})
    worker = create_worker(settings, connection, ["classify-toy"])
    try:
        worker.work(burst=True, logging_level="WARNING")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    finally:
        worker.context.metrics.close()
    written = connection.hlen(keys.results("ops", "toy"))
    assert written == 5
    assert metric_sample(text, "chatlens_messages_classified_total", '{model="toy"}') == written
    assert metric_sample(text, "chatlens_message_errors_total", '{model="toy"}') == 0
    assert metric_sample(text, "chatlens_batch_seconds_count", '{model="toy"}') == 3
    assert metric_sample(text, "chatlens_batch_size_sum") == 5
    assert metric_sample(text, "chatlens_model_loads_total", '{model="toy"}') == 1
    assert metric_sample(text, "chatlens_worker_rss_bytes") > 10 * 1024 * 1024


def test_progress_line_every_interval(caplog: pytest.LogCaptureFixture) -> None:
    metrics = WorkerMetrics(progress_log_s=0.0, name="w1")
    with caplog.at_level(logging.INFO, logger="chatlens.worker"):
        metrics.batch("default", 4, 0.01, classified=3, errors=1)
    (record,) = caplog.records
    # Each model's share under its one name, in the line and as a field for a log shipper.
    assert "progress w1: 1 batches, 3 messages (1 errors) [default 3]," in record.getMessage()
    assert json.loads(JsonFormatter(None).format(record))["models"] == {"default": 3}
    quiet = WorkerMetrics(progress_log_s=3600.0)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="chatlens.worker"):
        quiet.batch("m", 4, 0.01, classified=4, errors=0)
    assert caplog.records == []  # nothing until the interval has passed


def test_rq_per_job_lines_become_debug_and_json_logs_hide_the_password() -> None:
    logger = logging.getLogger("test.rq.worker")
    logger.setLevel(logging.INFO)
    demote = PerJobToDebug(logger)
    job_ok = logger.makeRecord(
        logger.name, logging.INFO, __file__, 1, "Worker %s: %s: %s (%s)", ("w", "q", "Job OK", "id"), None
    )
    assert not demote.filter(job_ok) and job_ok.levelname == "DEBUG"
    started = logger.makeRecord(
        logger.name,
        logging.INFO,
        __file__,
        1,
        "Worker %s: started with PID %d, version %s",
        ("w", 1, "3"),
        None,
    )
    assert demote.filter(started)
    logger.setLevel(logging.DEBUG)
    assert demote.filter(
        logger.makeRecord(logger.name, logging.INFO, __file__, 1, "Worker %s: %s: %s", ("w", "q", "j"), None)
    )

    url = "redis://:s3cret@redis:6379/0"
    record = logger.makeRecord(logger.name, logging.WARNING, __file__, 1, "lost %s", (url,), None)
    line = JsonFormatter(url).format(record)
    assert "s3cret" not in line and '"level": "WARNING"' in line and "redis:6379" in line
