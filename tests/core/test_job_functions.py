"""The job functions a worker runs are made from the functions themselves; the names the producer
enqueues by are the same strings."""

from __future__ import annotations

import fakeredis
import pytest
from rq import Queue

from chatlens.cli.job_functions import JOB_FUNCTIONS
from chatlens.core import queues as q
from chatlens.core.errors import ChatlensError
from chatlens.core.settings import Settings
from eval.cron import build_scheduler
from eval.jobs import evaluate_latest_run
from worker import jobs
from worker.runner import WORKER_JOBS, check_queues


def test_each_name_the_producer_enqueues_by_is_the_real_functions() -> None:
    assert q.job_name(jobs.classify_batch) == q.CLASSIFY_JOB
    assert q.job_name(jobs.summarise_conversation) == q.SUMMARISE_JOB
    assert q.job_name(jobs.summarise_conversations) == q.SUMMARISE_MANY_JOB
    assert q.job_name(evaluate_latest_run) == q.EVALUATE_JOB


def test_job_name_is_the_name_rq_stores() -> None:
    connection = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    queue = Queue("eval", connection=connection, serializer=q.SERIALIZER)
    for func in (jobs.classify_batch, evaluate_latest_run):
        assert queue.enqueue(func).func_name == q.job_name(func)


def test_workers_run_exactly_what_chatlens_enqueues() -> None:
    assert {q.CLASSIFY_JOB, q.SUMMARISE_JOB, q.SUMMARISE_MANY_JOB} == WORKER_JOBS
    assert {*WORKER_JOBS, q.EVALUATE_JOB} == JOB_FUNCTIONS


def test_the_nightly_scheduler_enqueues_an_allowed_job() -> None:
    connection = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    settings = Settings(nightly_interval_s=60)
    (cron_job,) = build_scheduler(settings, connection).get_jobs()
    job = cron_job.enqueue(connection)
    assert job.func_name in JOB_FUNCTIONS and job.origin == settings.eval_queue


def test_a_worker_without_the_evaluation_refuses_the_eval_queue_at_start() -> None:
    settings = Settings()
    with pytest.raises(ChatlensError, match=r"serve it with `chatlens worker --queue eval`$"):
        check_queues(settings, [q.classify_queue("default"), settings.eval_queue], WORKER_JOBS)
    check_queues(settings, [q.classify_queue("default"), settings.eval_queue], JOB_FUNCTIONS)
