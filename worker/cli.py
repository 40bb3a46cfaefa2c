"""`chatlens worker`, and the dead letters: `chatlens failed`, `chatlens requeue`.

The three commands belong to the set of job functions the workers run: chatlens/cli/app.py builds them
with the worker role's jobs and the nightly evaluation's (chatlens/cli/job_functions.py); `python -m worker`
with the worker role's own (worker/__main__.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import typer

from chatlens.core.connection import connect_settings
from chatlens.core.console import user_errors
from chatlens.core.errors import ChatlensError
from chatlens.core.queues import default_queues
from chatlens.core.settings import get_settings
from worker.dead_letters import failed_jobs
from worker.dead_letters import requeue as requeue_failed
from worker.runner import run_worker


@dataclass(frozen=True)
class WorkerCommands:
    job_functions: frozenset[str]

    @user_errors
    def worker(
        self,
        queue: list[str] | None = typer.Option(
            None,
            "--queue",
            "-q",
            help="queue(s) to serve [default: classify-<each enabled classifier>, summarise-<backend>]",
        ),
        burst: bool = typer.Option(False, help="stop once the queues are empty"),
        threads: int | None = typer.Option(
            None, min=1, help="inference threads for this worker (torch or ONNX Runtime; see README)"
        ),
        name: str | None = typer.Option(None, help="worker name [default: RQ's]"),
        log_level: str = typer.Option("INFO", help="DEBUG, INFO, WARNING or ERROR"),
        redis_url: str | None = typer.Option(None, help="overrides CHATLENS_REDIS_URL"),
        metrics_port: int | None = typer.Option(
            None, min=1, max=65535, help="serve Prometheus /metrics on this port (CHATLENS_METRICS_PORT)"
        ),
    ) -> None:
        """Serve the queues, loading each model once for the life of the process."""
        settings = get_settings()
        if metrics_port is not None:
            settings = settings.model_copy(update={"metrics_port": metrics_port})
        connection = connect_settings(settings, redis_url)
        run_worker(
            settings,
            connection,
            queue or default_queues(settings),
            burst,
            threads,
            name,
            log_level.upper(),
            job_functions=self.job_functions,
        )

    @user_errors
    def failed(
        self,
        run: str | None = typer.Option(None, help="only this run's jobs"),
        as_json: bool = typer.Option(False, "--json", help="one JSON list instead of a table"),
        redis_url: str | None = typer.Option(None, help="overrides CHATLENS_REDIS_URL"),
    ) -> None:
        """List the failed jobs of chatlens's queues: what each was, why it failed, and when."""
        settings = get_settings()
        items = failed_jobs(connect_settings(settings, redis_url), settings, self.job_functions, run)
        if as_json:
            typer.echo(json.dumps([f.as_dict() for f in items], indent=2))
            return
        if not items:
            typer.echo("no failed jobs")
            return
        for f in items:
            kind = "FOREIGN (not requeueable)" if f.foreign else f"run {f.run}"
            typer.echo(f"{f.failed_at or '?'}  {f.queue}  {f.job_id}  {kind}  {f.what}\n    {f.reason}")
        typer.echo(
            f"{len(items)} failed job(s); `chatlens requeue --all` puts chatlens's own back on their queue"
        )

    @user_errors
    def requeue(
        self,
        job_ids: list[str] | None = typer.Argument(None, help="failed job ids (see `chatlens failed`)"),
        all_jobs: bool = typer.Option(False, "--all", help="every failed job that matches --run / --queue"),
        run: str | None = typer.Option(None, help="only this run's jobs"),
        queue: str | None = typer.Option(None, help="only this queue's jobs"),
        redis_url: str | None = typer.Option(None, help="overrides CHATLENS_REDIS_URL"),
    ) -> None:
        """Put failed jobs back on their queue (RQ's FailedJobRegistry.requeue); foreign jobs never."""
        if bool(job_ids) == all_jobs:
            raise ChatlensError("requeue: give JOB_ID... or --all (not both)")
        settings = get_settings()
        moved, foreign = requeue_failed(
            connect_settings(settings, redis_url),
            settings,
            self.job_functions,
            None if all_jobs else list(job_ids or []),
            run,
            queue,
        )
        for f in moved:
            typer.echo(f"requeued {f.job_id} on {f.queue}: {f.what}")
        left = (
            f"; {len(foreign)} foreign job(s) left in the failed registry, never requeued" if foreign else ""
        )
        typer.echo(f"{len(moved)} job(s) requeued{left}")
