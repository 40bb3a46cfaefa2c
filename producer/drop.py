"""`chatlens drop --run NAME --yes`: delete every key of a run (messages, results, summaries, stats)."""

from __future__ import annotations

import typer

from chatlens.core.connection import connect_settings
from chatlens.core.console import out, user_errors
from chatlens.core.errors import ChatlensError
from chatlens.core.failed import drop_failed
from chatlens.core.keys import check_run_name
from chatlens.core.settings import get_settings
from chatlens.core.store import RunStore


@user_errors
def drop(
    run: str = typer.Option(..., "--run", help="the run whose keys are deleted"),
    yes: bool = typer.Option(False, "--yes", help="confirm: the run's messages and results are deleted"),
    redis_url: str | None = typer.Option(None, help="overrides CHATLENS_REDIS_URL"),
) -> None:
    """Delete a run's keys from Redis now, rather than when CHATLENS_RESULT_TTL_S expires them."""
    try:
        check_run_name(run)
    except ValueError as exc:
        raise ChatlensError(str(exc)) from None
    if not yes:
        raise ChatlensError(f"`chatlens drop --run {run}` deletes the run's messages and results: add --yes")
    settings = get_settings()
    connection = connect_settings(settings, redis_url)
    deleted = RunStore(connection, settings.result_ttl_s).drop_run(run)
    if not deleted:
        raise ChatlensError(f"no run named {run!r} in Redis; `chatlens status` lists the runs")
    # Its failed jobs go with it: requeued, they would write a dropped run's results again.
    failed = drop_failed(connection, settings, run)
    # Jobs of the run still queued would write results again (under a fresh TTL): they are left to the
    # workers, which is why a drop is best run once `chatlens status` shows the run done (every result
    # and summary in or errored).
    out.print(
        f"dropped run {run}: {deleted} keys deleted, {failed} failed job(s) removed",
        highlight=False,
        soft_wrap=True,
    )
