"""Each message's previous turn (`producer.context`), stored with it the same way from a file and a stream."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from chatlens.cli.app import app
from chatlens.core import keys
from chatlens.core.connection import FAKE_URL, connect
from chatlens.core.schemas import Message
from producer.context import PreviousTurns, truncate
from producer.table import read_table

runner = CliRunner()
# Two interleaved conversations, a blank row (dropped: no turn) and a duplicate (dropped) in "a".
CSV = (
    "conversation_id,message,sentiment\n"
    "a,hello there,Happy\n"
    "b,first of b,Neutral\n"
    "a,,Neutral\n"
    "a,how are you?,Curious to dive deeper\n"
    "a,how are you?,Curious to dive deeper\n"
    "b,second of b,Sad\n"
    "a,fine thanks,Happy\n"
)
EXPECTED = {
    ("a", "hello there"): None,
    ("b", "first of b"): None,
    ("a", "how are you?"): "hello there",
    ("b", "second of b"): "first of b",
    ("a", "fine thanks"): "how are you?",
}


def test_the_previous_turn_is_per_conversation_and_none_for_a_first_turn() -> None:
    turns = PreviousTurns()
    assert turns.observe("a", "one") is None
    assert turns.observe("b", "x") is None
    assert turns.observe("a", "two") == "one"
    assert turns.observe("a", "three") == "two"
    assert turns.observe("b", "y") == "x"


def test_the_memory_is_bounded_least_recently_active_conversation_first() -> None:
    turns = PreviousTurns(max_conversations=2)
    turns.observe("a", "a1")
    turns.observe("b", "b1")
    turns.observe("a", "a2")  # a is now the most recent
    turns.observe("c", "c1")  # evicts b
    assert len(turns.last) == 2 and turns.forgotten == 1
    assert turns.observe("b", "b2") is None  # forgotten: no context, never unbounded memory
    assert turns.observe("a", "a3") is None  # evicted by b's return (the bound is 2)
    assert turns.observe("b", "b3") == "b2"


def test_a_long_turn_is_truncated_at_a_word_boundary() -> None:
    text = "word " * 100
    assert truncate("short", 300) == "short"
    cut = truncate(text, 42)
    assert len(cut) <= 42 and cut == text[: len(cut)] and not cut.endswith(" ")
    assert truncate("x" * 50, 10) == "x" * 10  # no space to cut at
    turns = PreviousTurns(max_chars=15)
    turns.observe("a", "one two three four")
    assert turns.observe("a", "next") == "one two three"  # not "one two three f"
    with pytest.raises(ValueError):
        PreviousTurns(max_chars=0)


def test_the_reader_gives_each_row_its_previous_clean_turn(tmp_path: Path) -> None:
    path = tmp_path / "chat.csv"
    path.write_text(CSV, encoding="utf-8")
    rows = read_table(path).rows
    columns = (rows["conversation_id"], rows["message"], rows["previous"])
    got = {(c, m): p for c, m, p in zip(*columns, strict=True)}
    assert got == EXPECTED


@pytest.mark.parametrize("way", ["file", "stdin"])
def test_a_file_and_a_stream_store_the_same_previous_turns(
    tmp_path: Path, way: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect(FAKE_URL).flushall()
    monkeypatch.setenv("CHATLENS_CONTEXT_CHARS", "8")
    path = tmp_path / "chat.csv"
    path.write_text(CSV, encoding="utf-8")
    source = str(path) if way == "file" else "-"
    stdin = CSV if way == "stdin" else None
    result = runner.invoke(app, ["produce", source, "--run", "r", "--redis-url", FAKE_URL], input=stdin)
    assert result.exit_code == 0, result.output
    stored = [Message.model_validate_json(v) for v in connect(FAKE_URL).hvals(keys.messages("r"))]
    got = {(m.conversation_id, m.text): m.previous for m in stored}
    # CHATLENS_CONTEXT_CHARS=8 cuts "hello there" to "hello th" (no space in its last fifth).
    assert got == {k: None if v is None else truncate(v, 8) for k, v in EXPECTED.items()}
    assert got[("a", "how are you?")] == "hello th"
