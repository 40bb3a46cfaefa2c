"""Backend registries: names checked without importing a backend, factories imported on first build."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from chatlens.backends.summariser import SUMMARISERS
from chatlens.core.errors import ChatlensError
from chatlens.core.registry import Registry
from chatlens.core.settings import Settings
from tests.helpers import subprocess_env

BUILT_IN = {
    "classifier": ["default", "zeroshot", "emotion", "finetuned", "accurate"],
    "summary backend": ["extractive", "transformers", "mlx", "llamacpp"],
}
# What a fresh process registers, less the installed plugins: the tests themselves register toy backends.
REGISTERED = """
import json
from importlib.metadata import entry_points
from chatlens.backends.classifier import CLASSIFIERS
from chatlens.backends.summariser import SUMMARISERS
found = {}
for registry in (CLASSIFIERS, SUMMARISERS):
    plugins = {point.name for point in entry_points(group=registry.entry_point_group)}
    found[registry.kind] = {n: f for n, f in registry._all().items() if n not in plugins}
print(json.dumps(found))
"""


def test_the_built_in_names_are_exactly_these_and_each_factory_exists() -> None:
    done = subprocess.run(
        [sys.executable, "-c", REGISTERED], env=subprocess_env(), capture_output=True, text=True, check=True
    )
    registered: dict[str, dict[str, str]] = json.loads(done.stdout)
    assert {kind: list(factories) for kind, factories in registered.items()} == BUILT_IN
    for factories in registered.values():
        for name, factory in factories.items():
            assert defines(*factory.split(":")), f"{name}: {factory} names nothing that exists"


def defines(module: str, attribute: str) -> bool:
    """Whether `module`'s source defines `attribute` ("function" or "Class.method"), read without importing
    it: the factories import torch, mlx or llama.cpp, which the fast lane does not load."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:  # a parent package is missing
        return False
    if spec is None or spec.origin is None:
        return False
    scope: list[ast.stmt] = ast.parse(Path(spec.origin).read_text(encoding="utf-8")).body
    for part in attribute.split("."):
        found = [
            node for node in scope if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == part
        ]
        if not found:
            return False
        scope = found[0].body
    return True


def test_unknown_names_are_one_line_naming_the_setting() -> None:
    with pytest.raises(
        ChatlensError,
        match=r"^unknown summary backend 'bart'; known: extractive, .* \(fix CHATLENS_SUMMARY_BACKEND\)$",
    ):
        SUMMARISERS.check("bart")


def test_checking_names_imports_no_backend() -> None:
    registry: Registry[object] = Registry("thing", "CHATLENS_THINGS", "chatlens.test-things")
    registry.add("lazy", "tests.core.not_a_module:build")
    assert registry.check("lazy") == "lazy"  # the module does not exist, and checking did not import it


def test_a_missing_dependency_is_one_line_naming_the_extra() -> None:
    registry: Registry[object] = Registry("thing", "CHATLENS_THINGS", "chatlens.test-things")
    registry.add("needs", "tests.fixtures.needs_missing_package:build")
    with pytest.raises(
        ChatlensError, match=r"needs the Python package 'surely_not_installed_pkg'.*chatlens\[worker\]"
    ):
        registry.build("needs", Settings())


def test_factories_must_name_module_and_function() -> None:
    with pytest.raises(ValueError, match="module:function"):
        Registry("thing", "X", "g").add("bad", "tests.core.toy")
