"""Hostile input to `chatlens produce`, every input fed both ways: as `produce FILE` and on stdin
(`cat FILE | produce -`). Both ways give the same exit code, the same one-line refusal (but for the
source's name: the path, or "stdin"), the same counts line, the same rejects and the same stored
messages. A user mistake is one line and exit 2 with nothing written or enqueued; a bad row is one
counted, listed reject. Then what only a file can get wrong (missing, a directory, unreadable) and bad
arguments."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from chatlens.cli.app import app
from chatlens.core import keys
from chatlens.core.connection import FAKE_URL, connect
from producer.rows import format_of, sniff_format
from tests.helpers import subprocess_env

runner = CliRunner()
HEADER = b"conversation_id,message,sentiment\n"
GOOD = HEADER + b"1,hello there,Happy\n1,how are you,Neutral\n"


@pytest.fixture(autouse=True)
def empty_fake() -> None:
    connect(FAKE_URL).flushall()


def produce(*args: str, stdin: bytes | None = None):
    return runner.invoke(app, ["produce", *args], input=stdin)


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@dataclass(frozen=True)
class Refused:
    fragment: str  # in the one line


@dataclass(frozen=True)
class Read:
    counts: str  # the start of the counts line
    rejects: tuple[tuple[int, str, str], ...] = ()  # (row, field, a fragment of the reason)


# -- the file-level problems: refused in one line ----------------------------------------------------------

REFUSED = [
    ("utf16-bom.csv", GOOD.decode().encode("utf-16"), Refused("not UTF-8")),
    ("utf16-no-bom.csv", GOOD.decode().encode("utf-16-le"), Refused("not UTF-8")),
    ("utf32.csv", GOOD.decode().encode("utf-32"), Refused("not UTF-8")),
    ("latin1-header.csv", "conversation_id,méssage\n1,a\n".encode("latin-1"), Refused("not UTF-8")),
    (
        "latin1-rows.csv",
        "conversation_id,message\n1,café crème\n2,déjà vu\n".encode("latin-1"),
        Refused("not UTF-8 (2 of 3 lines have invalid bytes)"),
    ),
    ("gzip.csv", gzip.compress(GOOD), Refused("not UTF-8")),
    ("png.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", Refused("not UTF-8")),
    ("zip.xlsx", b"PK\x03\x04" + b"\x00" * 64, Refused("not UTF-8")),
    ("nul-only.csv", b"\x00" * 100, Refused("not UTF-8")),
    ("empty.csv", b"", Refused("the input is empty")),
    ("whitespace.csv", b" \t\r\n\n", Refused("the input is empty")),
    ("header-only.csv", HEADER, Refused("has a header but no rows")),
    ("header-only-crlf.csv", HEADER.replace(b"\n", b"\r\n"), Refused("has a header but no rows")),
    ("semicolon.csv", b"conversation_id;message;sentiment\n1;hi;Happy\n", Refused("semicolon-separated")),
    ("bom-semicolon.csv", b"\xef\xbb\xbfconversation_id;message\n1;hi\n", Refused("semicolon-separated")),
    ("tabs.csv", b"conversation_id\tmessage\n1\thi\n", Refused("tab-separated")),
    ("pipes.csv", b"conversation_id|message\n1|hi\n", Refused("pipe-separated")),
    ("no-header.csv", b"1,hello,Happy\n2,bye,Sad\n", Refused("missing column(s) conversation_id, message")),
    ("wrong-columns.csv", b"id,text\n1,hello\n", Refused("missing column(s) conversation_id, message")),
    ("dup-columns.csv", b"conversation_id,message,message\n1,a,b\n", Refused("appear more than once")),
    ("unterminated.csv", b'conversation_id,message\n1,"never closed\n', Refused("not a valid CSV (line")),
    ("mostly-ragged.csv", HEADER + b"1,a,b,c,d\n2,e,f,g,h\n", Refused("not a valid CSV (2 of 2 rows")),
    ("ragged.csv", b"conversation_id,message\n1,a,b,c\n", Refused("not a valid CSV (1 of 1 rows")),
    (
        "mostly-ragged-head.csv",  # past the head (64 KiB), a file is judged on its head
        HEADER + b"1,a,b,c,d\n" * 8000,
        Refused("rows do not have the header's 3 fields"),
    ),
    ("arrays.jsonl", b"[1, 2]\n[3, 4]\n", Refused("not valid JSON Lines (2 of 2 lines")),
    ("scalars.jsonl", b'1\n"text"\nnull\n', Refused("not valid JSON Lines")),
    (
        "one-array.jsonl",
        json.dumps([{"conversation_id": 1, "message": "a"}]).encode(),
        Refused("not valid JSON Lines"),
    ),
    ("csv-as.jsonl", GOOD, Refused("not valid JSON Lines")),
    (
        "mostly-bad.jsonl",
        b'{"conversation_id": 1, "message": "hi"}\nnot json\n[1]\n',
        Refused("2 of 3 lines"),
    ),
    ("no-message.jsonl", b'{"conversation_id": 1, "text": "a"}\n', Refused("missing column(s) message")),
    ("text.parquet", b"this is not parquet", Refused("not a readable Parquet file")),
    (
        "truncated.parquet",
        _parquet(pd.DataFrame({"conversation_id": ["1"], "message": ["a"]}))[:40],
        Refused("not a readable Parquet file"),
    ),
    ("csv-as.parquet", GOOD, Refused("not a readable Parquet file")),
    ("wrong-cols.parquet", _parquet(pd.DataFrame({"a": [1], "b": ["x"]})), Refused("missing column(s)")),
    (
        "empty.parquet",
        _parquet(pd.DataFrame({"conversation_id": [], "message": []})),
        Refused("has a header but no rows"),
    ),
]

# -- bad rows: rejected one by one, counted, listed; the good rows go through ------------------------------

COUNTS_3_1 = "read 3 / dropped-missing 0 / dropped-duplicate 0 / rejected 1 / not-selected 0 / enqueued 2"
ODD_LINES = [
    '{"conversation_id": 1, "message": "fine", "sentiment": "Happy"}',
    '{"conversation_id": 1, "message": "also fine"}',
    "[1, 2, 3]",  # not an object
    '{"conversation_id": {"nested": 1}, "message": "id is an object"}',
    '{"conversation_id": 2, "message": {"text": "nested"}}',
    '{"conversation_id": 2, "message": "ok", "sentiment": 7}',
    '{"conversation_id": 3, "message": "nul \\u0000 inside"}',
]
TYPES = pd.DataFrame(
    {
        "conversation_id": [1.0, None, 2.0, 3.0],
        "message": ["bytes", "no id", "ok", "fine"],
        "sentiment": ["Happy", "Sad", "Sad", "Unknown-Label"],
    }
)

READ = [
    (
        "huge.csv",
        GOOD + b"2," + b"x" * 200_000 + b",Sad\n",
        Read(COUNTS_3_1, ((3, "message", "200000 char"),)),
    ),
    (
        "huge-quoted.csv",
        GOOD + b'2,"' + b"y, " * 50_000 + b'",Sad\n',
        Read(COUNTS_3_1, ((3, "message", "150000 characters, over the limit"),)),
    ),
    ("nul-message.csv", GOOD + b"2,bad\x00row,Sad\n", Read(COUNTS_3_1, ((3, "message", "NUL character"),))),
    ("nul-id.csv", GOOD + b"2\x00,fine,Sad\n", Read(COUNTS_3_1, ((3, "conversation_id", "NUL character"),))),
    ("bad-utf8-row.csv", GOOD + b"2,caf\xe9,Sad\n", Read(COUNTS_3_1, ((3, "message", "not valid UTF-8"),))),
    ("unknown-label.csv", GOOD + b"2,fine,Ecstatic\n", Read(COUNTS_3_1, ((3, "sentiment", "'Ecstatic'"),))),
    (
        "ragged-row.csv",
        GOOD + b"2,a,b,c,Sad\n",
        Read(COUNTS_3_1, ((3, "row", "5 fields, the header has 3"),)),
    ),
    ("no-id.csv", GOOD + b",orphan,Sad\n", Read(COUNTS_3_1, ((3, "conversation_id", "is missing"),))),
    (
        "bom-crlf.csv",
        b"\xef\xbb\xbf" + GOOD.replace(b"\n", b"\r\n"),
        Read("read 2 / dropped-missing 0 / dropped-duplicate 0 / rejected 0 / not-selected 0 / enqueued 2"),
    ),
    (
        "line-separators.csv",  # only \n, \r\n and \r end a CSV line; \x0c or U+2028 is text
        GOOD + "2,page\x0cbreak,Sad\n2,one\u2028line,Sad\n".encode(),
        Read("read 4 / dropped-missing 0 / dropped-duplicate 0 / rejected 0 / not-selected 0 / enqueued 4"),
    ),
    (
        "line-separators.jsonl",  # a raw U+2028 is valid inside a JSON string
        json.dumps({"conversation_id": "1", "message": "one\u2028line\x85too"}, ensure_ascii=False).encode()
        + b"\n",
        Read("read 1 / dropped-missing 0 / dropped-duplicate 0 / rejected 0 / not-selected 0 / enqueued 1"),
    ),
    (
        "late-ragged.csv",  # a ragged row past the head is a reject like any other
        HEADER + b"1,fine message number one,Happy\n" * 3000 + b"2,a,b,c,Sad\n",
        Read(
            "read 3001 / dropped-missing 0 / dropped-duplicate 2999 / rejected 1",
            ((3001, "row", "5 fields"),),
        ),
    ),
    (
        "odd.jsonl",
        ("\n".join(ODD_LINES) + "\n").encode(),
        Read(
            "read 7 / dropped-missing 0 / dropped-duplicate 0 / rejected 5 / not-selected 0 / enqueued 2",
            (
                (3, "row", "line 3 is not a JSON object"),
                (4, "conversation_id", "conversation_id is not text or a number (got dict)"),
                (5, "message", "message is not text (got dict)"),
                (6, "sentiment", "label is not text (got int)"),
                (7, "message", "message contains a NUL character (a binary or corrupted row)"),
            ),
        ),
    ),
    (
        "non-text.jsonl",
        jsonl(
            [
                {"conversation_id": 7, "message": "a real message", "sentiment": "Happy"},
                {"conversation_id": 7, "message": 42, "sentiment": "Happy"},
                {"conversation_id": 7, "message": ["a", "list"], "sentiment": "Sad"},
                {"conversation_id": 8, "message": None, "sentiment": "Sad"},
            ]
        )
        + b"{broken\n",
        Read(
            "read 5 / dropped-missing 1 / dropped-duplicate 0 / rejected 3",
            ((2, "message", "(got int)"), (3, "message", "(got list)"), (5, "row", "line 5 is not a JSON")),
        ),
    ),
    (
        "types.parquet",
        _parquet(TYPES),
        Read(
            "read 4 / dropped-missing 0 / dropped-duplicate 0 / rejected 2 / not-selected 0 / enqueued 2",
            ((2, "conversation_id", "is missing"), (4, "sentiment", "unknown label")),
        ),
    ),
    (
        "numbers.parquet",
        _parquet(pd.DataFrame({"conversation_id": [1, 2], "message": [10, 20]})),
        Read(
            "read 2 / dropped-missing 0 / dropped-duplicate 0 / rejected 2 / not-selected 0 / enqueued 0",
            ((1, "message", "message is not text (got int)"), (2, "message", "(got int)")),
        ),
    ),
]

CASES = REFUSED + READ


@dataclass
class Outcome:
    exit_code: int
    lines: list[str]  # what was printed, the source's name and working directory made neutral
    stored: dict[str, str]
    rejects: str | None
    left: set[str]  # files left in the working directory
    keys: list[str]  # job ids are random: every job key is "rq:job:*"


def produce_one_way(
    path: Path, content: bytes, way: str, work: Path, monkeypatch: pytest.MonkeyPatch, *extra: str
) -> Outcome:
    connect(FAKE_URL).flushall()
    work.mkdir()
    monkeypatch.chdir(work)
    if way == "file":
        result = produce(str(path), "--run", "r", "--redis-url", FAKE_URL, *extra)
    else:
        # What a user must add on stdin where the file's name said the format and the content does not.
        named = format_of(path)
        flag = ["--format", named.value] if named and named is not sniff_format(content) else []
        result = produce("-", *flag, "--run", "r", "--redis-url", FAKE_URL, *extra, stdin=content)
    assert "Traceback" not in result.output
    lines = [
        line.replace(str(path), "stdin").replace(str(work), "WORK")
        for line in result.output.splitlines()
        if line.strip() and not line.startswith("reading stdin")
    ]
    connection = connect(FAKE_URL)
    rejects = work / "chatlens-rejects-r.csv"
    return Outcome(
        result.exit_code,
        lines,
        {k.decode(): v.decode() for k, v in connection.hgetall(keys.messages("r")).items()},
        rejects.read_text() if rejects.exists() else None,
        {p.name for p in work.iterdir()},
        sorted("rq:job:*" if k.startswith(b"rq:job:") else k.decode() for k in connection.keys("*")),
    )


@pytest.mark.parametrize(("name", "content", "expected"), CASES, ids=[c[0] for c in CASES])
def test_a_file_and_stdin_get_the_same_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, content: bytes, expected: Refused | Read
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    by_file = produce_one_way(path, content, "file", tmp_path / "file", monkeypatch)
    by_stdin = produce_one_way(path, content, "stdin", tmp_path / "stdin", monkeypatch)
    assert by_stdin == by_file
    if isinstance(expected, Refused):
        assert by_file.exit_code == 2, by_file.lines
        assert len(by_file.lines) == 1 and by_file.lines[0].startswith("error: stdin: "), by_file.lines
        assert expected.fragment in by_file.lines[0], by_file.lines[0]
        assert by_file.keys == [] and by_file.left == set()  # no run registered, nothing enqueued or written
        return
    assert by_file.exit_code == 0, by_file.lines
    assert any(line.startswith(expected.counts) for line in by_file.lines), by_file.lines
    assert by_file.rejects is not None or not expected.rejects
    if expected.rejects:
        rejects = pd.read_csv(io.StringIO(by_file.rejects or ""), keep_default_na=False)
        found = list(zip(rejects["row"], rejects["field"], rejects["reason"], strict=True))
        assert len(found) == len(expected.rejects)
        for (row, field, reason), (want_row, want_field, fragment) in zip(
            found, expected.rejects, strict=True
        ):
            assert (row, field) == (want_row, want_field) and fragment in reason, (row, field, reason)


@pytest.mark.slow
def test_real_pipes_and_dev_null_get_the_file_answer(tmp_path: Path) -> None:
    """The same through a shell: `cat FILE | chatlens produce -` and `produce - < /dev/null` (stdin's
    descriptor, which the in-process runner does not have)."""
    cases = {
        "binary.csv": gzip.compress(GOOD),
        "semicolon.csv": b"conversation_id;message;sentiment\n1;hi;Happy\n",
        "rows.csv": GOOD + b"2,a,b,c,Sad\n",
        "empty.csv": b"",
    }
    chatlens = f"{sys.executable} -m chatlens.cli.app produce"
    script = []
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        run = name.split(".")[0]
        script.append(f"echo '== {name} file'; {chatlens} {name} --run {run}-file 2>&1; echo rc=$?")
        script.append(f"echo '== {name} pipe'; cat {name} | {chatlens} - --run {run}-pipe 2>&1; echo rc=$?")
    script.append(f"echo '== devnull'; {chatlens} - --run n < /dev/null 2>&1; echo rc=$?")
    env = subprocess_env(CHATLENS_REDIS_URL=FAKE_URL, CHATLENS_SUMMARISE="false")
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    said = {
        block.split("\n", 1)[0]: [
            line
            for line in block.split("\n", 1)[1].splitlines()
            if line and not line.startswith("reading stdin") and "rejected rows are listed" not in line
        ]
        for block in done.stdout.split("== ")[1:]
    }
    for name in cases:
        assert said[f"{name} pipe"] == [line.replace(name, "stdin") for line in said[f"{name} file"]], name
    assert [said[f"{name} file"][-1] for name in cases] == ["rc=2", "rc=2", "rc=0", "rc=2"]
    assert said["devnull"] == [
        "error: stdin: the input is empty; give a header row and at least one message",
        "rc=2",
    ]
    assert (tmp_path / "chatlens-rejects-rows-pipe.csv").read_text() == (
        tmp_path / "chatlens-rejects-rows-file.csv"
    ).read_text()


def test_a_stream_sniffs_its_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --format, stdin is read as the file it came from: JSON Lines by its first line, Parquet by
    its magic bytes, CSV otherwise."""
    monkeypatch.chdir(tmp_path)
    for name, content in (
        ("m.jsonl", ("\n".join(ODD_LINES) + "\n").encode()),
        ("m.parquet", _parquet(TYPES)),
        ("m.csv", GOOD),
    ):
        path = tmp_path / name
        path.write_bytes(content)
        by_file = produce(str(path), "--run", "f", "--redis-url", FAKE_URL)
        by_stdin = produce("-", "--run", "s", "--redis-url", FAKE_URL, stdin=content)
        assert by_file.exit_code == by_stdin.exit_code == 0, by_file.output + by_stdin.output
        connection = connect(FAKE_URL)
        assert connection.hgetall(keys.messages("s")) == connection.hgetall(keys.messages("f"))
        assert connection.hlen(keys.messages("s")) > 0


# -- what only a file can get wrong --------------------------------------------------------------------------


def assert_one_line_exit_2(result, fragment: str, directory: Path, before: set[str]) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert connect(FAKE_URL).keys("*") == []  # no run registered, nothing enqueued
    assert {p.name for p in directory.iterdir()} == before  # no rejects file, no split file


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


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--sample-frac", "0.5"], "--sample-frac/--split need the whole input: give a file"),
        (["--split", "test"], "--sample-frac/--split need the whole input: give a file"),
        (["--follow"], "stdin is followed already: drop --follow"),
    ],
)
def test_what_a_stream_cannot_do_is_one_line(tmp_path: Path, extra: list[str], fragment: str) -> None:
    result = produce("-", "--run", "s", "--redis-url", FAKE_URL, *extra, stdin=GOOD)
    assert_one_line_exit_2(result, fragment, tmp_path, {p.name for p in tmp_path.iterdir()})
