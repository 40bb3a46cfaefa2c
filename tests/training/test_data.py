"""The one loader and validation split of every trainer and the promotion gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from chatlens.cli.demo import EXAMPLE_FILE
from chatlens.core.errors import ChatlensError
from chatlens.core.labels import LABELS
from chatlens.training.data import load_split


def write(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.write_text(
        "conversation_id,message,sentiment\n" + "".join(f"{c},{m},{s}\n" for c, m, s in rows),
        encoding="utf-8",
    )
    return path


def test_validation_is_whole_conversations_the_same_for_every_caller() -> None:
    split = load_split([EXAMPLE_FILE], 0.2, 0)
    groups = split.data.groups
    assert set(groups[split.train].tolist()).isdisjoint(groups[split.val].tolist())
    assert len(split.train) + len(split.val) == len(split.data.texts) == 95
    assert len(set(groups[split.val].tolist())) == round(0.2 * len(set(groups.tolist())))
    again = load_split([EXAMPLE_FILE], 0.2, 0)
    assert again.val.tolist() == split.val.tolist() and again.data.digest == split.data.digest
    other = load_split([EXAMPLE_FILE], 0.2, 1)
    assert other.val.tolist() != split.val.tolist()


def test_several_files_keep_their_conversations_apart_and_count_drops(tmp_path: Path) -> None:
    # Conversation "1" in each file is a different conversation; a blank, a duplicate, an unlabelled row.
    curious = "Curious to dive deeper"
    a = write(tmp_path / "a.csv", [("1", "hi", "Happy"), ("1", "hi", "Happy"), ("2", "so?", curious),
                                   ("3", " ", "Sad"), ("3", "oh no", "Sad")])  # fmt: skip
    b = write(tmp_path / "b.csv", [("1", "wow", "Surprised"), ("1", "meh", ""), ("4", "ok", "Neutral")])
    split = load_split([a, b], 0.5, 0)
    assert sorted(set(split.data.groups.tolist())) == ["0#1", "0#2", "0#3", "1#1", "1#4"]
    assert split.data.dropped == {"missing": 1, "duplicate": 1, "rejected": 0, "unlabelled": 1}
    assert split.data.counts.tolist() == [1, 1, 1, 1, 1, 0, 0, 0]
    assert sorted(LABELS[i] for i in split.data.y) == sorted(
        ["Happy", curious, "Sad", "Surprised", "Neutral"]
    )


def test_a_limit_keeps_the_first_rows_and_names_them_in_the_digest() -> None:
    full, limited = load_split([EXAMPLE_FILE], 0.2, 0), load_split([EXAMPLE_FILE], 0.2, 0, limit=40)
    assert len(limited.data.texts) == 40 and limited.data.texts == full.data.texts[:40]
    assert limited.data.digest != full.data.digest
    assert np.array_equal(limited.data.counts, full.data.counts)  # the prior stays the files' label mix


@pytest.mark.parametrize(("cap", "limit"), [(None, 40), (4, None), (6, 30)])
def test_a_capped_or_limited_run_holds_out_part_of_the_full_runs_conversations(
    cap: int | None, limit: int | None
) -> None:
    """So the promotion gate, which scores the full run's validation, never scores a row such a run
    trained on."""
    full = load_split([EXAMPLE_FILE], 0.3, 0)
    part = load_split([EXAMPLE_FILE], 0.3, 0, cap_per_class=cap, limit=limit)
    assert len(part.data.texts) < len(full.data.texts) and len(part.val) > 0
    held = set(full.data.groups[full.val].tolist())
    assert set(part.data.groups[part.val].tolist()) <= held
    assert held.isdisjoint(part.data.groups[part.train].tolist())
    full_val_texts = {full.data.texts[i] for i in full.val}
    assert full_val_texts.isdisjoint(part.data.texts[i] for i in part.train)


def test_a_limit_that_keeps_no_validation_conversation_is_one_clear_error() -> None:
    full = load_split([EXAMPLE_FILE], 0.2, 0)
    first_held = int(full.val.min())  # rows before it are all training rows
    with pytest.raises(ChatlensError, match="hold no validation conversation"):
        load_split([EXAMPLE_FILE], 0.2, 0, limit=max(first_held, 10))


def test_one_conversation_is_too_few_to_split(tmp_path: Path) -> None:
    path = write(tmp_path / "one.csv", [("7", "hello", "Happy"), ("7", "bye", "Sad")])
    with pytest.raises(ChatlensError, match=r"one.csv: 1 conversation\(s\), too few"):
        load_split([path], 0.15, 0)
