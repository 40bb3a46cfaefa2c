"""Errors that end a command with one clear line instead of a traceback."""


class ChatlensError(Exception):
    """A problem the user can fix; the message says what and how."""

    exit_code = 2


class ServiceUnavailable(ChatlensError):
    """Redis (or another service) cannot be reached."""

    exit_code = 3
