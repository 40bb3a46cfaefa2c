"""Backend registries: names checked without importing a backend, factories imported on first build."""

from __future__ import annotations

import pytest

from chatlens.backends.classifier import CLASSIFIERS
from chatlens.backends.summariser import SUMMARISERS
from chatlens.core.errors import ChatlensError
from chatlens.core.registry import Registry
from chatlens.core.settings import Settings


def test_builtin_names() -> None:
    assert set(CLASSIFIERS.names()) >= {"default", "zeroshot", "emotion", "finetuned"}
    assert set(SUMMARISERS.names()) >= {"extractive", "transformers", "mlx"}


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
    registry.add("needs", "tests.core.needs_missing_package:build")
    with pytest.raises(
        ChatlensError, match=r"needs the Python package 'surely_not_installed_pkg'.*chatlens\[worker\]"
    ):
        registry.build("needs", Settings())


def test_factories_must_name_module_and_function() -> None:
    with pytest.raises(ValueError, match="module:function"):
        Registry("thing", "X", "g").add("bad", "tests.core.toy")
