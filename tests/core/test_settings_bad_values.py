"""Every kind of wrong CHATLENS_* value: `chatlens produce` stops with one line naming the variable, exit 2,
before anything is read, written or enqueued."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from chatlens.cli.app import app
from chatlens.core.connection import FAKE_URL, connect

runner = CliRunner()
SECRET = "pw-in-a-bad-url"


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("CHATLENS_BATCH_SIZE", "abc", "CHATLENS_BATCH_SIZE: Input should be a valid integer"),
        ("CHATLENS_BATCH_SIZE", "0", "CHATLENS_BATCH_SIZE: Input should be greater than or equal to 1"),
        ("CHATLENS_BATCH_SIZE", "2.5", "CHATLENS_BATCH_SIZE"),
        ("CHATLENS_BATCH_SIZE", "99999999", "CHATLENS_BATCH_SIZE: Input should be less than or equal"),
        ("CHATLENS_RESULT_TTL_S", "-5", "CHATLENS_RESULT_TTL_S: Input should be greater than or equal to 60"),
        ("CHATLENS_MAX_MESSAGE_CHARS", "-1", "CHATLENS_MAX_MESSAGE_CHARS"),
        ("CHATLENS_SUMMARISE", "maybe", "CHATLENS_SUMMARISE: Input should be a valid boolean"),
        ("CHATLENS_REGISTRY_POLL_S", "nan", "CHATLENS_REGISTRY_POLL_S"),
        ("CHATLENS_RETRY_INTERVALS_S", "5,soon", "CHATLENS_RETRY_INTERVALS_S"),
        ("CHATLENS_EMOTION_MAPPING", "{not json", "CHATLENS_EMOTION_MAPPING: not valid JSON"),
        ("CHATLENS_ZEROSHOT_VERBS", '{"Happy": ', "CHATLENS_ZEROSHOT_VERBS: not valid JSON"),
        (
            "CHATLENS_EMOTION_MAPPING",
            "[1, 2]",
            "CHATLENS_EMOTION_MAPPING: Input should be a valid dictionary",
        ),
        ("CHATLENS_REDIS_URL", "127.0.0.1:6379", "CHATLENS_REDIS_URL"),
        ("CHATLENS_REDIS_URL", "localhost", "not a Redis URL"),
        ("CHATLENS_REDIS_URL", f"http://:{SECRET}@db:6379/0", "not a Redis URL"),
        ("CHATLENS_REDIS_URL", "redis://", "not a Redis URL"),
        ("CHATLENS_CLASSIFIERS", "default,no-such-classifier", "no-such-classifier"),
        ("CHATLENS_SUMMARY_BACKEND", "no-such-summariser", "no-such-summariser"),
        ("CHATLENS_SUMMARY_SENTENCES", "0", "CHATLENS_SUMMARY_SENTENCES"),
        ("CHATLENS_WORKER_TTL_S", "1", "CHATLENS_WORKER_TTL_S"),
    ],
)
def test_a_wrong_setting_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    connect(FAKE_URL).flushall()
    data = tmp_path / "m.csv"
    data.write_text("conversation_id,message,sentiment\n1,hello,Happy\n")
    monkeypatch.setenv(variable, value)
    result = runner.invoke(app, ["produce", str(data), "--run", "r", "--redis-url", FAKE_URL])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert fragment in lines[0] and lines[0].startswith("error:")
    assert SECRET not in result.output
    assert connect(FAKE_URL).keys("*") == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]


def test_an_empty_tls_file_setting_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    from chatlens.core.settings import Settings

    monkeypatch.setenv("CHATLENS_REDIS_TLS_CA_FILE", "")
    assert Settings().redis_tls_ca_file is None
