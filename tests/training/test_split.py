"""The seeded split of a file by conversation (`chatlens train split-valid`)."""

from __future__ import annotations

import csv
import inspect
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chatlens.cli.app import app
from chatlens.core.errors import ChatlensError
from chatlens.training import split as split_module
from chatlens.training.cli import split_valid_command
from chatlens.training.split import split_conversations


def conversations_file(path: Path, n: int = 20) -> Path:
    """n conversations of 3-6 turns each, interleaved the way they are not in valid.csv: conversation
    k's turns are contiguous, and the turn text names conversation and position."""
    lines = ["conversation_id,message,sentiment"]
    for k in range(n):
        lines += [f"c{k},turn {t} of c{k},Neutral" for t in range(3 + k % 4)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_the_split_is_whole_conversations_in_order_and_deterministic(tmp_path: Path) -> None:
    source = conversations_file(tmp_path / "valid.csv")
    first = split_conversations(source, tmp_path / "a", 0.3, 22)
    again = split_conversations(source, tmp_path / "b", 0.3, 22)
    assert first.train.read_bytes() == again.train.read_bytes()
    assert first.held_out.read_bytes() == again.held_out.read_bytes()
    train, held = read(first.train), read(first.held_out)
    assert train[0] == held[0] == ["conversation_id", "message", "sentiment"]
    train_ids, held_ids = {r[0] for r in train[1:]}, {r[0] for r in held[1:]}
    assert train_ids.isdisjoint(held_ids) and len(train_ids | held_ids) == 20
    assert len(held_ids) == first.held_out_conversations == 6  # round(0.3 * 20)
    # Every row lands in exactly one part, each part keeps the source order (a conversation's turns in order).
    source_rows = read(source)[1:]
    assert sorted(train[1:] + held[1:]) == sorted(source_rows)
    for part in (train[1:], held[1:]):
        assert part == [r for r in source_rows if r in part]
    other = split_conversations(source, tmp_path / "c", 0.3, 23)
    assert {r[0] for r in read(other.held_out)[1:]} != held_ids


def test_the_command_defaults_are_the_documented_split(tmp_path: Path) -> None:
    defaults = {p.name: p.default for p in inspect.signature(split_valid_command).parameters.values()}
    assert defaults["held_out"] == split_module.HELD_OUT_FRAC == 0.3
    assert defaults["seed"] == split_module.SEED == 22
    source = conversations_file(tmp_path / "valid.csv")
    result = CliRunner().invoke(app, ["train", "split-valid", str(source), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    expected = split_conversations(source, tmp_path / "expected")
    assert (tmp_path / "out" / "valid-heldout.csv").read_bytes() == expected.held_out.read_bytes()


def test_a_file_without_conversations_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("message,sentiment\nhi,Happy\n", encoding="utf-8")
    with pytest.raises(ChatlensError, match="no 'conversation_id' column"):
        split_conversations(bad, tmp_path / "out")
    result = CliRunner().invoke(app, ["train", "split-valid", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "no 'conversation_id' column" in result.output
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
