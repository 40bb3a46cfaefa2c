"""`chatlens status`."""

from __future__ import annotations

import json
import time
from typing import Any

import typer
from rich.live import Live

from chatlens.core.connection import connect_settings
from chatlens.core.console import out, user_errors
from chatlens.core.errors import ChatlensError
from chatlens.core.redact import redact_url
from chatlens.core.settings import get_settings
from chatlens.core.store import RunStore
from chatlens.ops.status import gather_status
from chatlens.ops.status_view import render


@user_errors
def status(
    run: str | None = typer.Option(None, "--run", help="show this run [default: the latest few]"),
    runs: int = typer.Option(3, "--runs", min=1, help="how many of the latest runs to show"),
    watch: bool = typer.Option(False, "--watch", help="refresh in place until Ctrl-C"),
    interval: float = typer.Option(2.0, "--interval", min=0.2, help="seconds between refreshes (--watch)"),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="the figures as JSON (docs/reference/status.md); --watch: a line each",
    ),
    serve: int | None = typer.Option(
        None, "--serve", min=1, max=65535, help="serve the figures to Prometheus on PORT (/metrics)"
    ),
    metrics_host: str | None = typer.Option(
        None, "--metrics-host", help="address --serve listens on [CHATLENS_METRICS_HOST]"
    ),
    redis_url: str | None = typer.Option(None, help="overrides CHATLENS_REDIS_URL"),
) -> None:
    """Queues, workers and runs at a glance: depths, heartbeats, progress, throughput, ETA, last eval."""
    settings = get_settings()
    if metrics_host is not None:
        settings = settings.model_copy(update={"metrics_host": metrics_host})
    connection = connect_settings(settings, redis_url)
    if run is not None and RunStore(connection, settings.result_ttl_s).run_info(run) is None:
        raise ChatlensError(f"--run: no run named {run!r} in Redis (`chatlens status` lists the latest)")
    if serve is not None:
        from chatlens.ops.exporter import serve_forever

        shown = redact_url(redis_url or settings.redis_url)
        out.print(
            f"serving /metrics on {settings.metrics_host}:{serve} for {shown}",
            highlight=False,
            soft_wrap=True,
        )
        serve_forever(connection, settings, serve, runs)
        return
    if as_json and not watch:
        out.print_json(json.dumps(gather_status(connection, settings, run, runs)))
        return

    def screen() -> Any:
        if as_json:  # --watch --json: one compact document a line (JSON lines)
            return json.dumps(gather_status(connection, settings, run, runs))
        return render(gather_status(connection, settings, run, runs), out.width, details=run is not None)

    if not watch:
        out.print(screen())
        return
    try:
        if not out.is_terminal or as_json:
            # Piped or logged: a live region would print nothing; one whole snapshot per interval instead.
            while True:
                if as_json:
                    out.file.write(screen() + "\n")
                else:
                    out.print(screen())
                out.file.flush()
                time.sleep(interval)
        with Live(screen(), console=out, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(screen(), refresh=True)
    except KeyboardInterrupt:
        pass
