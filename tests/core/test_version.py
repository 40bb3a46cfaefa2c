"""The version is written once, in pyproject.toml, and chatlens reports that one."""

from __future__ import annotations

import tomllib

import chatlens
from tests.helpers import ROOT


def test_the_version_is_pyprojects() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert chatlens.__version__ == declared
