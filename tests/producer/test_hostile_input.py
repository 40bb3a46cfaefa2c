"""Hostile input to `chatlens produce`: bad files, rows, encodings, dialects, huge fields, NUL bytes and bad
arguments. A user mistake is one line and exit 2 with nothing written or enqueued; a bad row is one
counted, listed reject."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from chatlens.cli.app import app
from chatlens.core import keys
from chatlens.core.connection import FAKE_URL, connect

runner = CliRunner()
HEADER = b"conversation_id,message,sentiment\n"
GOOD = HEADER + b"1,hello there,Happy\n1,how are you,Neutral\n"


@pytest.fixture(autouse=True)
def empty_fake() -> None:
    connect(FAKE_URL).flushall()


def produce(*args: str):
    return runner.invoke(app, ["produce", *args])


def assert_one_line_exit_2(result, fragment: str, directory: Path, before: set[str]) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert connect(FAKE_URL).keys("*") == []  # no run registered, nothing enqueued
    assert {p.name for p in directory.iterdir()} == before  # no rejects file, no split file


def _parquet(frame: pd.DataFrame) -> bytes:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


FILE_PROBLEMS = [
    ("utf16-bom.csv", GOOD.decode().encode("utf-16"), "not UTF-8"),
    ("utf16-no-bom.csv", GOOD.decode().encode("utf-16-le"), "not UTF-8"),
    ("utf32.csv", GOOD.decode().encode("utf-32"), "not UTF-8"),
    ("latin1-header.csv", "conversation_id,méssage\n1,a\n".encode("latin-1"), "not UTF-8"),
    ("gzip.csv", gzip.compress(GOOD), "not UTF-8"),
    ("zip.xlsx", b"PK\x03\x04" + b"\x00" * 64, "not UTF-8"),
    ("nul-only.csv", b"\x00" * 100, "not UTF-8"),
    ("empty.csv", b"", "empty"),
    ("whitespace.csv", b" \t\r\n\n", "empty"),
    ("header-only.csv", HEADER, "no rows"),
    ("header-only-crlf.csv", HEADER.replace(b"\n", b"\r\n"), "no rows"),
    ("semicolon.csv", b"conversation_id;message;sentiment\n1;hi;Happy\n", "semicolon-separated"),
    ("bom-semicolon.csv", b"\xef\xbb\xbfconversation_id;message\n1;hi\n", "semicolon-separated"),
    ("tabs.csv", b"conversation_id\tmessage\n1\thi\n", "tab-separated"),
    ("pipes.csv", b"conversation_id|message\n1|hi\n", "pipe-separated"),
    ("no-header.csv", b"1,hello,Happy\n2,bye,Sad\n", "missing column(s) conversation_id, message"),
    ("wrong-columns.csv", b"id,text\n1,hello\n", "missing column(s)"),
    ("dup-columns.csv", b"conversation_id,message,message\n1,a,b\n", "appear more than once"),
    ("unterminated.csv", b'conversation_id,message\n1,"never closed\n', "not a valid CSV"),
    ("mostly-ragged.csv", HEADER + b"1,a,b,c,d\n2,e,f,g,h\n", "not a valid CSV"),
    ("arrays.jsonl", b"[1, 2]\n[3, 4]\n", "not valid JSON Lines"),
    ("scalars.jsonl", b'1\n"text"\nnull\n', "not valid JSON Lines"),
    (
        "one-array.jsonl",
        json.dumps([{"conversation_id": 1, "message": "a"}]).encode(),
        "not valid JSON Lines",
    ),
    ("csv-as.jsonl", GOOD, "not valid JSON Lines"),
    ("objects-no-message.jsonl", b'{"conversation_id": 1, "text": "a"}\n', "missing column(s) message"),
    ("text.parquet", b"this is not parquet", "not a readable Parquet file"),
    (
        "truncated.parquet",
        _parquet(pd.DataFrame({"conversation_id": ["1"], "message": ["a"]}))[:40],
        "Parquet",
    ),
    ("csv-as.parquet", GOOD, "not a readable Parquet file"),
    ("wrong-cols.parquet", _parquet(pd.DataFrame({"a": [1], "b": ["x"]})), "missing column(s)"),
    ("empty.parquet", _parquet(pd.DataFrame({"conversation_id": [], "message": []})), "no rows"),
]


@pytest.mark.parametrize(("name", "content", "fragment"), FILE_PROBLEMS, ids=[c[0] for c in FILE_PROBLEMS])
def test_bad_files_are_one_line_and_nothing_written(
    tmp_path: Path, name: str, content: bytes, fragment: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    before = {p.name for p in tmp_path.iterdir()}
    assert_one_line_exit_2(
        produce(str(path), "--run", "r", "--redis-url", FAKE_URL), fragment, tmp_path, before
    )


def test_a_directory_a_missing_file_and_a_broken_link(tmp_path: Path) -> None:
    (tmp_path / "adir.csv").mkdir()
    (tmp_path / "link.csv").symlink_to(tmp_path / "nowhere.csv")
    before = {p.name for p in tmp_path.iterdir()}
    for name, fragment in (
        ("adir.csv", "is a directory"),
        ("missing.csv", "no such file"),
        ("link.csv", "no such file"),
    ):
        result = produce(str(tmp_path / name), "--run", "r", "--redis-url", FAKE_URL)
        assert_one_line_exit_2(result, fragment, tmp_path, before)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its permissions")
def test_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.csv"
    path.write_bytes(GOOD)
    path.chmod(0)
    before = {p.name for p in tmp_path.iterdir()}
    assert_one_line_exit_2(
        produce(str(path), "--run", "r", "--redis-url", FAKE_URL), "cannot be read", tmp_path, before
    )


def test_a_file_name_that_looks_like_markup_is_printed_as_text(tmp_path: Path) -> None:
    result = produce(str(tmp_path / "[bold]x[/].csv"), "--run", "r", "--redis-url", FAKE_URL)
    assert_one_line_exit_2(result, "[bold]x[/].csv: no such file", tmp_path, set())


# -- bad rows: rejected one by one, counted, listed; the good rows go through ------------------------------

ROW_PROBLEMS = [
    ("huge.csv", HEADER + b"2," + b"x" * 200_000 + b",Sad\n", "message", "200000 characters, over the limit"),
    (
        "huge-quoted.csv",
        HEADER + b'2,"' + b"y, " * 50_000 + b'",Sad\n',
        "message",
        "150000 characters, over the limit",
    ),
    ("nul-message.csv", HEADER + b"2,bad\x00row,Sad\n", "message", "NUL character"),
    ("nul-id.csv", HEADER + b"2\x00,fine,Sad\n", "conversation_id", "NUL character"),
    ("bad-utf8-row.csv", HEADER + b"2,caf\xe9,Sad\n", "message", "not valid UTF-8"),
    ("unknown-label.csv", HEADER + b"2,fine,Ecstatic\n", "sentiment", "unknown label 'Ecstatic'"),
    ("ragged-row.csv", HEADER + b"2,a,b,c,Sad\n", "row", "5 fields, the header has 3"),
    ("no-id.csv", HEADER + b",orphan,Sad\n", "conversation_id", "conversation_id is missing"),
]


@pytest.mark.parametrize(
    ("name", "content", "field", "reason"), ROW_PROBLEMS, ids=[c[0] for c in ROW_PROBLEMS]
)
def test_a_bad_row_is_one_counted_listed_reject(
    tmp_path: Path, name: str, content: bytes, field: str, reason: str
) -> None:
    path = tmp_path / name
    path.write_bytes(GOOD + content.removeprefix(HEADER))
    result = produce(str(path), "--run", "rows", "--redis-url", FAKE_URL, "--out-dir", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "read 3 / dropped-missing 0 / dropped-duplicate 0 / rejected 1 / not-selected 0 / enqueued 2" in (
        result.output
    )
    rejects = pd.read_csv(tmp_path / "out" / "chatlens-rejects-rows.csv", keep_default_na=False)
    assert rejects["row"].tolist() == [3] and rejects["field"].tolist() == [field]
    assert reason in rejects["reason"][0]
    assert len(connect(FAKE_URL).hgetall(keys.messages("rows"))) == 2


def test_a_bom_and_crlf_csv_is_read_like_any_other(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + GOOD.replace(b"\n", b"\r\n"))
    result = produce(str(path), "--run", "bom", "--redis-url", FAKE_URL)
    assert result.exit_code == 0, result.output
    assert "read 2 / dropped-missing 0 / dropped-duplicate 0 / rejected 0 / not-selected 0 / enqueued 2" in (
        result.output
    )


def test_jsonl_with_odd_lines_and_types_rejects_those_rows(tmp_path: Path) -> None:
    lines = [
        '{"conversation_id": 1, "message": "fine", "sentiment": "Happy"}',
        '{"conversation_id": 1, "message": "also fine"}',
        "[1, 2, 3]",  # not an object
        '{"conversation_id": {"nested": 1}, "message": "id is an object"}',
        '{"conversation_id": 2, "message": {"text": "nested"}}',
        '{"conversation_id": 2, "message": "ok", "sentiment": 7}',
        '{"conversation_id": 3, "message": "nul \\u0000 inside"}',
    ]
    path = tmp_path / "odd.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = produce(str(path), "--run", "odd", "--redis-url", FAKE_URL)
    assert result.exit_code == 0, result.output
    assert "read 7 / dropped-missing 0 / dropped-duplicate 0 / rejected 5 / not-selected 0 / enqueued 2" in (
        result.output
    )
    rejects = pd.read_csv(tmp_path / "chatlens-rejects-odd.csv", keep_default_na=False)
    assert rejects["reason"].tolist() == [
        "line 3 is not a JSON object",
        "conversation_id is not text or a number (got dict)",
        "message is not text (got dict)",
        "label is not text (got int)",
        "message contains a NUL character (a binary or corrupted row)",
    ]


def test_parquet_with_wrong_types_rejects_those_rows(tmp_path: Path) -> None:
    path = tmp_path / "types.parquet"
    frame = pd.DataFrame(
        {
            "conversation_id": [1.0, None, 2.0, 3.0],
            "message": [b"bytes".decode(), "no id", "ok", "fine"],
            "sentiment": ["Happy", "Sad", "Sad", "Unknown-Label"],
        }
    )
    frame.to_parquet(path)
    numbers = tmp_path / "numbers.parquet"
    pd.DataFrame({"conversation_id": [1, 2], "message": [10, 20]}).to_parquet(numbers)
    result = produce(str(path), "--run", "types", "--redis-url", FAKE_URL)
    assert result.exit_code == 0, result.output
    assert "read 4 / dropped-missing 0 / dropped-duplicate 0 / rejected 2 / not-selected 0 / enqueued 2" in (
        result.output
    )
    result = produce(str(numbers), "--run", "numbers", "--redis-url", FAKE_URL)
    assert result.exit_code == 0, result.output
    assert "rejected 2" in result.output and "enqueued 0" in result.output
    rejects = pd.read_csv(tmp_path / "chatlens-rejects-numbers.csv")
    assert set(rejects["reason"]) == {"message is not text (got int)"}


# -- bad arguments ----------------------------------------------------------------------------------------

ARGUMENT_PROBLEMS = [
    (["--sample-frac", "0"], "--sample-frac must be 0 < frac <= 1"),
    (["--sample-frac", "-0.5"], "--sample-frac must be 0 < frac <= 1"),
    (["--sample-frac", "1.5"], "--sample-frac must be 0 < frac <= 1"),
    (["--sample-frac", "nan"], "--sample-frac must be 0 < frac <= 1"),
    (["--sample-frac", "0.01"], "select none of the 2 clean rows"),
    (["--test-frac", "0"], "--test-frac must be 0 < frac < 1"),
    (["--test-frac", "1"], "--test-frac must be 0 < frac < 1"),
    (["--test-frac", "-2"], "--test-frac must be 0 < frac < 1"),
    (["--split", "test", "--test-frac", "0.01"], "select none of the 2 clean rows"),
    (["--run", "a:b"], "run name 'a:b' is not valid"),
    (["--run", ""], "run name '' is not valid"),
    (["--run", "../etc"], "is not valid"),
    (["--run", "has space"], "is not valid"),
    (["--run", "x" * 101], "is not valid"),
    (["--run", "-starts-with-dash"], "is not valid"),
    (["--redis-url", "127.0.0.1:6379"], "'127.0.0.1:6379' is not a Redis URL"),
    (["--redis-url", "http://localhost:6379"], "is not a Redis URL"),
    (["--redis-url", "redis://:pw-shown@localhost:notaport/0"], "--redis-url / CHATLENS_REDIS_URL"),
    (["--message-column", "text"], "missing column(s) text"),
    (["--id-column", "nope"], "missing column(s) nope"),
]


@pytest.mark.parametrize(
    ("extra", "fragment"), ARGUMENT_PROBLEMS, ids=[" ".join(a)[:40] for a, _ in ARGUMENT_PROBLEMS]
)
def test_bad_arguments_are_one_line_exit_2_and_nothing_written(
    tmp_path: Path, extra: list[str], fragment: str
) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(GOOD)
    out_dir = tmp_path / "out"
    options = {"--run": "args", "--redis-url": FAKE_URL, "--out-dir": str(out_dir), "--split": "train"}
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        options[flag] = value
    args = [str(path)] + [item for pair in options.items() for item in pair]
    before = {p.name for p in tmp_path.iterdir()}
    result = produce(*args)
    assert_one_line_exit_2(result, fragment, tmp_path, before)
    assert "pw-shown" not in result.output
    assert not out_dir.exists()
