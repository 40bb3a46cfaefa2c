"""`chatlens worker`."""

from __future__ import annotations

import typer

from chatlens.core.connection import connect_settings
from chatlens.core.console import user_errors
from chatlens.core.queues import default_queues
from chatlens.core.settings import get_settings
from worker.runner import run_worker


@user_errors
def worker(
    queue: list[str] | None = typer.Option(
        None,
        "--queue",
        "-q",
        help="queue(s) to serve [default: classify-<each enabled classifier>, summarise-<backend>]",
    ),
    burst: bool = typer.Option(False, help="stop once the queues are empty"),
    threads: int | None = typer.Option(None, min=1, help="torch threads for this worker (see README)"),
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
        settings, connection, queue or default_queues(settings), burst, threads, name, log_level.upper()
    )
