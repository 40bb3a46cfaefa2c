"""Errors a command ends with: one line and the exit code, never a traceback."""

from __future__ import annotations

import typer
from redis.exceptions import ConnectionError, ResponseError
from typer.testing import CliRunner

from chatlens.core.console import user_errors


def test_a_command_redis_refuses_ends_with_one_line_and_exit_3() -> None:
    app = typer.Typer()

    @app.command()
    @user_errors
    def write() -> None:
        raise ResponseError("OOM command not allowed when used memory > 'maxmemory'.")

    result = CliRunner().invoke(app, [])
    assert result.exit_code == 3
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: Redis refused a command: OOM"), result.output
    assert "Traceback" not in result.output


def test_a_command_that_loses_redis_ends_with_one_line_and_exit_3() -> None:
    app = typer.Typer()

    @app.command()
    @user_errors
    def read() -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6399. Connection refused.")

    result = CliRunner().invoke(app, [])
    assert result.exit_code == 3
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: lost Redis (Error 111"), result.output
