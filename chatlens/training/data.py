"""The labelled rows a head is trained on: several files, split by conversation, optionally capped.

Several `--train` files are read as one table. The validation part is whole conversations (a
conversation's turns share topic and wording; a turn-level split would put its neighbours on both sides),
chosen by a seeded permutation of the conversation ids. A per-class cap keeps every row of the rare
labels and a seeded sample of the frequent ones: encoding is the expensive step, and the rare labels
are what macro-F1 lacks. Each kept row carries the weight count/kept of its class, so that the loss,
the class prior of the logit adjustment and the validation figures see the files' own label mix.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chatlens.core.errors import ChatlensError
from chatlens.core.labels import LABELS


@dataclass(frozen=True)
class Labelled:
    texts: list[str]
    y: np.ndarray  # label index per row
    groups: np.ndarray  # "file#conversation_id" per row: the unit of the validation split
    weights: np.ndarray  # count/kept of the row's class (1.0 without a cap)
    counts: np.ndarray  # rows per class in the files, before any cap
    dropped: dict[str, int]  # rows cleaning dropped, per reason, over all files
    digest: str  # SHA-256 of the kept (text, label) rows: which data a head was trained on

    def subset(self, index: np.ndarray) -> Labelled:
        return Labelled(
            [self.texts[i] for i in index], self.y[index], self.groups[index], self.weights[index],
            self.counts, self.dropped, self.digest,
        )  # fmt: skip


def load_files(paths: list[Path], cap_per_class: int | None = None, seed: int = 0) -> Labelled:
    from producer.table import read_table

    texts: list[str] = []
    labels: list[int] = []
    groups: list[str] = []
    dropped = {"missing": 0, "duplicate": 0, "rejected": 0, "unlabelled": 0}
    index = {label: i for i, label in enumerate(LABELS)}
    for k, path in enumerate(paths):
        result = read_table(path)
        rows = result.rows
        labelled = rows[rows["label"].notna()]
        if labelled.empty:
            raise ChatlensError(f"{path}: no labelled rows (need a 'sentiment' column with the 8 labels)")
        dropped["missing"] += result.dropped_missing
        dropped["duplicate"] += result.dropped_duplicate
        dropped["rejected"] += len(result.rejects)
        dropped["unlabelled"] += len(rows) - len(labelled)
        texts += labelled["message"].tolist()
        labels += labelled["label"].map(index).tolist()
        groups += [f"{k}#{c}" for c in labelled["conversation_id"].tolist()]
    y = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(y, minlength=len(LABELS))
    keep = np.arange(len(y)) if cap_per_class is None else capped_indices(y, cap_per_class, seed)
    kept = np.bincount(y[keep], minlength=len(LABELS))
    weights = (counts / np.clip(kept, 1, None))[y[keep]]
    digest = hashlib.sha256()
    for i in keep:
        digest.update(f"{labels[i]}\t{texts[i]}\n".encode())
    return Labelled(
        [texts[i] for i in keep], y[keep], np.asarray(groups, dtype=object)[keep], weights,
        counts, dropped, digest.hexdigest(),
    )  # fmt: skip


def capped_indices(y: np.ndarray, cap: int, seed: int) -> np.ndarray:
    """Every row of a class with at most `cap` rows; a seeded sample of `cap` rows of the others."""
    rng = np.random.default_rng(seed)
    keep = []
    for label in range(len(LABELS)):
        where = np.flatnonzero(y == label)
        keep.append(where if len(where) <= cap else rng.choice(where, cap, replace=False))
    return np.sort(np.concatenate(keep))


def grouped_indices(groups: np.ndarray, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) row indices; validation is a seeded `frac` of the conversations."""
    names = np.unique(groups)
    rng = np.random.default_rng(seed)
    held = set(rng.permutation(names)[: max(1, round(frac * len(names)))].tolist())
    is_held = np.array([g in held for g in groups])
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)
