"""The labelled rows every trainer and the promotion gate read, and their one validation split.

Several `--train` files are read as one table. The validation part is whole conversations (a
conversation's turns share topic and wording; a turn-level split would put its neighbours on both sides),
chosen by a seeded permutation of the conversation ids: the frozen head, the adapter, the fine-tuned
encoder and the promotion gate all hold out the same conversations for the same files, fraction and seed.
A per-class cap keeps every row of the rare labels and a seeded sample of the frequent ones: encoding is
the expensive step, and the rare labels are what macro-F1 lacks. Each kept row carries the weight
count/kept of its class, so that the loss, the class prior of the logit adjustment and the validation
figures see the files' own label mix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chatlens.core.errors import ChatlensError
from chatlens.core.labels import LABELS

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Labelled:
    texts: list[str]
    y: np.ndarray  # label index per row
    groups: np.ndarray  # "file#conversation_id" per row: the unit of the validation split
    weights: np.ndarray  # count/kept of the row's class (1.0 without a cap)
    counts: np.ndarray  # rows per class in the files, before any cap
    conversations: np.ndarray  # every group of the files, before any cap or limit: what the split draws from
    dropped: dict[str, int]  # rows cleaning dropped, per reason, over all files
    digest: str  # SHA-256 of the kept (text, label) rows: which data a model was trained on

    def subset(self, index: np.ndarray) -> Labelled:
        texts, y = [self.texts[i] for i in index], self.y[index]
        return Labelled(
            texts, y, self.groups[index], self.weights[index], self.counts, self.conversations, self.dropped,
            _digest(texts, y),
        )  # fmt: skip


@dataclass(frozen=True)
class Split:
    """Labelled rows and the row indices of their training and validation parts."""

    data: Labelled
    train: np.ndarray
    val: np.ndarray


def _clean_rows(path: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    """Training's one read of a file: the ingest path's cleaned rows (columns conversation_id, message
    and label, None where a row has none) and the rows cleaning dropped, per reason."""
    from producer.table import read_table

    result = read_table(path)
    dropped = {"missing": result.dropped_missing, "duplicate": result.dropped_duplicate}
    return result.rows, dropped | {"rejected": len(result.rejects)}


def load_files(paths: Sequence[Path], cap_per_class: int | None = None, seed: int = 0) -> Labelled:
    texts: list[str] = []
    labels: list[int] = []
    groups: list[str] = []
    dropped = {"missing": 0, "duplicate": 0, "rejected": 0, "unlabelled": 0}
    index = {label: i for i, label in enumerate(LABELS)}
    for k, path in enumerate(paths):
        rows, file_dropped = _clean_rows(path)
        labelled = rows[rows["label"].notna()]
        if labelled.empty:
            raise ChatlensError(f"{path}: no labelled rows (need a 'sentiment' column with the 8 labels)")
        for reason, n in file_dropped.items():
            dropped[reason] += n
        dropped["unlabelled"] += len(rows) - len(labelled)
        texts += labelled["message"].tolist()
        labels += labelled["label"].map(index).tolist()
        groups += [f"{k}#{c}" for c in labelled["conversation_id"].tolist()]
    y = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(y, minlength=len(LABELS))
    keep = np.arange(len(y)) if cap_per_class is None else capped_indices(y, cap_per_class, seed)
    kept = np.bincount(y[keep], minlength=len(LABELS))
    weights = (counts / np.clip(kept, 1, None))[y[keep]]
    every_group = np.asarray(groups, dtype=object)
    texts = [texts[i] for i in keep]
    return Labelled(
        texts, y[keep], every_group[keep], weights, counts, np.unique(every_group), dropped,
        _digest(texts, y[keep]),
    )  # fmt: skip


def load_split(
    paths: Sequence[Path],
    val_frac: float,
    seed: int,
    cap_per_class: int | None = None,
    limit: int | None = None,
) -> Split:
    """The files' labelled rows (capped, and the first `limit` only for smoke runs) split by conversation.

    The held-out conversations are drawn from every conversation of the files, before the cap and the
    limit: they depend on the files, `val_frac` and `seed` alone, so a capped or limited run validates on
    part of the full run's validation conversations and trains on none of them (the promotion gate scores
    the full set)."""
    data = load_files(paths, cap_per_class, seed)
    if limit:
        data = data.subset(np.arange(min(limit, len(data.texts))))
    train, val = grouped_indices(data.groups, val_frac, seed, data.conversations)
    files = ", ".join(map(str, paths))
    if len(data.conversations) < 2:
        raise ChatlensError(
            f"{files}: {len(data.conversations)} conversation(s), too few to hold whole conversations out "
            "for validation and train on the rest"
        )
    if not len(train) or not len(val):
        part = "validation" if not len(val) else "training"
        raise ChatlensError(f"{files}: the rows kept (--limit, --cap-per-class) hold no {part} conversation")
    return Split(data, train, val)


def _digest(texts: list[str], y: np.ndarray) -> str:
    digest = hashlib.sha256()
    for text, label in zip(texts, y.tolist(), strict=True):
        digest.update(f"{label}\t{text}\n".encode())
    return digest.hexdigest()


def capped_indices(y: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """Every row of a class with at most `cap` rows; a seeded sample of `cap` rows of the others."""
    rng = np.random.default_rng(seed)
    keep = []
    for label in range(len(LABELS)):
        where = np.flatnonzero(y == label)
        keep.append(where if len(where) <= cap else rng.choice(where, cap, replace=False))
    return np.sort(np.concatenate(keep))


def grouped_indices(
    groups: np.ndarray, frac: float, seed: int, names: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) row indices; validation is a seeded `frac` of the conversations `names`
    (sorted and unique; by default those of `groups`)."""
    names = np.unique(groups) if names is None else names
    rng = np.random.default_rng(seed)
    held = set(rng.permutation(names)[: max(1, round(frac * len(names)))].tolist())
    is_held = np.array([g in held for g in groups])
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)
