"""A backend module whose dependency is not installed (test_registry)."""

import surely_not_installed_pkg  # noqa: F401


def build(settings: object) -> object:
    return object()
