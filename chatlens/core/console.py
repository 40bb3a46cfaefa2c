"""Terminal output shared by the commands: one-line errors, progress bars."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from chatlens.core.errors import ChatlensError, ServiceUnavailable

P = ParamSpec("P")
R = TypeVar("R")

out = Console()
err = Console(stderr=True)


def user_errors(func: Callable[P, R]) -> Callable[P, R]:
    """A user's mistake ends the command with one line and its exit code, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ChatlensError as exc:
            # Escaped: a file name or a server's reply in brackets is text, not rich markup.
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except ResponseError as exc:
            # The server refused a command (out of memory under noeviction, a failed save with
            # stop-writes-on-bgsave-error, ...): the operator's to fix on the server, not a bug here.
            err.print(
                f"[bold red]error:[/] Redis refused a command: {escape(str(exc))}; fix the server (INFO "
                "memory, INFO persistence) and run the same command again",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(ServiceUnavailable.exit_code) from None
        except (RedisConnectionError, RedisTimeoutError) as exc:
            # Lost where no retry loop covers it (the producer and the worker ride outages out on their
            # own). redis-py's message names host and port, never the password.
            err.print(
                f"[bold red]error:[/] lost Redis ({escape(str(exc))}); "
                "run the same command again once it is back",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(ServiceUnavailable.exit_code) from None

    return wrapper


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )
