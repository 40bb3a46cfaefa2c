"""The settings object and the key layout."""

from __future__ import annotations

import pytest

from chatlens.core import keys
from chatlens.core.errors import ChatlensError
from chatlens.core.settings import Settings, get_settings


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATLENS_CLASSIFIERS", "default, zeroshot")
    monkeypatch.setenv("CHATLENS_RETRY_INTERVALS_S", "[1, 2]")
    monkeypatch.delenv("CHATLENS_MLFLOW_TRACKING_URI")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    settings = Settings()
    assert settings.classifiers == ["default", "zeroshot"]
    assert settings.retry_intervals_s == [1, 2]
    assert settings.mlflow_tracking_uri == "sqlite:///elsewhere.db"
    assert settings.redis_url == "redis://localhost:6379/0" and "redis_url" not in settings.model_fields_set


def test_every_setting_has_a_description() -> None:
    # The configuration reference (docs/reference/configuration.md) is generated from these descriptions.
    blank = [name for name, info in Settings.model_fields.items() if not (info.description or "").strip()]
    assert not blank, f"chatlens/core/settings.py: give {blank} a Field(description=...)"


def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATLENS_BATCH_SIZE", "0")
    with pytest.raises(ValueError, match="batch_size"):
        Settings()


def test_a_runtime_is_one_setting_and_the_retired_int8_switch_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert get_settings().runtime == "auto"
    monkeypatch.setenv("CHATLENS_RUNTIME", "tensorrt")
    get_settings.cache_clear()
    with pytest.raises(ChatlensError, match="CHATLENS_RUNTIME"):
        get_settings()
    monkeypatch.setenv("CHATLENS_RUNTIME", "onnx-int8")
    monkeypatch.setenv("CHATLENS_QUANTIZE_INT8", "1")
    get_settings.cache_clear()
    with pytest.raises(ChatlensError, match="CHATLENS_QUANTIZE_INT8 is no longer read; set CHATLENS_RUNTIME"):
        get_settings()
    monkeypatch.delenv("CHATLENS_QUANTIZE_INT8")
    get_settings.cache_clear()
    assert get_settings().runtime == "onnx-int8"
    assert get_settings().exports_path == get_settings().models_dir / "onnx"


@pytest.mark.parametrize("name", ["a", "run-1", "2026.11.26_nightly"])
def test_good_run_names(name: str) -> None:
    assert keys.check_run_name(name) == name
    assert keys.results(name, "m") == f"chatlens:run:{name}:results:m"


@pytest.mark.parametrize("name", ["", "a:b", "-x", "a b", "x" * 101])
def test_bad_run_names(name: str) -> None:
    with pytest.raises(ValueError, match="run name"):
        keys.check_run_name(name)
