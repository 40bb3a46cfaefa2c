"""classify_batch through RQ's SimpleWorker on fakeredis: one result per message, retries, bad messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from rq import Queue
from rq.serializers import JSONSerializer

from chatlens.backends.classifier import Output
from chatlens.backends.classifiers.minilm import MiniLMClassifier
from chatlens.backends.encoder import BUNDLED_ENCODER_ID
from chatlens.cli.demo import EXAMPLE_FILE
from chatlens.core.connection import FAKE_URL, connect
from chatlens.core.queues import default_queues
from chatlens.core.settings import Settings, get_settings
from chatlens.core.store import RunStore
from producer.pipeline import produce_input
from worker.runner import create_worker

# A real model, a subprocess or a real redis-server: the full suite only, not `make test-fast`.
pytestmark = pytest.mark.slow


@pytest.fixture
def fake():
    connection = connect(FAKE_URL)
    connection.flushall()
    return connection


def work(connection) -> None:
    settings = get_settings()
    create_worker(settings, connection, default_queues(settings)).work(burst=True, logging_level="WARNING")


def test_every_message_gets_exactly_one_result(fake) -> None:
    counts = produce_input(Settings(batch_size=16), EXAMPLE_FILE, "ex", redis_url=FAKE_URL)
    work(fake)
    store = RunStore(fake, 3600)
    predictions = store.predictions("ex", "default")
    assert set(predictions) == set(store.messages("ex")) and len(predictions) == counts.enqueued
    first = next(iter(predictions.values()))
    assert first.model == "default" and first.model_version.startswith(BUNDLED_ENCODER_ID + "+head-")
    assert first.batch_size <= 16 and first.batch_latency_ms > 0


def test_a_retried_batch_leaves_one_result_per_message(fake, tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("conversation_id,message\n" + "".join(f"1,message number {i}\n" for i in range(5)))
    produce_input(Settings(batch_size=5), path, "retry", redis_url=FAKE_URL)
    queue = Queue("classify-default", connection=fake, serializer=JSONSerializer)
    (job,) = queue.get_jobs()
    # The same batch again, as a retry after a crash between the write and the job's completion.
    queue.enqueue_call(job.func_name, kwargs=job.kwargs)
    work(fake)
    store = RunStore(fake, 3600)
    assert store.result_count("retry", "default") == 5
    assert len(fake.hkeys("chatlens:run:retry:results:default")) == 5


def test_a_bad_message_is_recorded_and_the_rest_go_on(fake, tmp_path: Path, monkeypatch) -> None:
    original = MiniLMClassifier.predict

    def fragile(self, texts: list[str]) -> list[Output]:
        if any("BOOM" in t for t in texts):
            raise ValueError("cannot handle BOOM")
        return original(self, texts)

    monkeypatch.setattr(MiniLMClassifier, "predict", fragile)
    path = tmp_path / "m.csv"
    path.write_text("conversation_id,message\n1,fine one\n1,BOOM\n1,fine two\n2,fine three\n")
    produce_input(Settings(batch_size=10), path, "bad", redis_url=FAKE_URL)
    work(fake)
    store = RunStore(fake, 3600)
    assert store.result_count("bad", "default") == 3
    (error,) = store.errors("bad", "default").values()
    assert error.error == "ValueError: cannot handle BOOM"
    assert store.messages("bad")[error.message_id].text == "BOOM"
    failed = Queue("classify-default", connection=fake, serializer=JSONSerializer).failed_job_registry
    assert failed.count == 0
