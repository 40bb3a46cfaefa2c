"""`train_head`: fit the default model's head on the frozen MiniLM embeddings of a labelled file.

The test split is never touched: a stratified validation slice of the training file chooses the epoch
and the imbalance remedy (class-weighted loss, then per-class logit offsets tuned for macro-F1).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score

from chatlens import LABELS
from chatlens.errors import ChatlensError
from worker.encoder import SentenceEncoder
from worker.head import ClassifierHead, HeadConfig, save_head

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class TrainOptions:
    train_file: Path
    out_dir: Path
    val_frac: float = 0.15
    seed: int = 0
    epochs: int = 40
    lr: float = 2e-3
    weight_decay: float = 1e-4
    hidden_dim: int = 256
    dropout: float = 0.2
    class_weight_power: float = 0.5  # loss weight ~ (1/frequency)^power: 0 = none, 1 = inverse frequency
    batch_size: int = 256
    tune_offsets: bool = True
    max_accuracy_drop: float = 0.03  # the offsets may not cost more validation accuracy than this
    encoder: str | None = None
    max_length: int = 256
    encode_batch_size: int = 32


def load_labelled(path: Path) -> tuple[list[str], np.ndarray]:
    from producer.cleaning import clean
    from producer.reader import Columns, read_messages

    rows = clean(read_messages(path, Columns()), max_chars=10**9).rows
    rows = rows[rows["label"].notna()]
    if rows.empty:
        raise ChatlensError(f"{path}: no labelled rows (need a 'sentiment' column with the 8 labels)")
    index = {label: i for i, label in enumerate(LABELS)}
    return rows["message"].tolist(), rows["label"].map(index).to_numpy(dtype=np.int64)


def stratified_indices(y: np.ndarray, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    held = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        where = np.flatnonzero(y == label)
        held[rng.permutation(where)[: max(1, round(frac * len(where)))]] = True
    return np.flatnonzero(~held), np.flatnonzero(held)


def embed(encoder: SentenceEncoder, texts: list[str], progress: Progress, stage: str) -> np.ndarray:
    # Sorting the whole file once makes every batch pad little; chunks only feed the progress bar.
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.empty((len(texts), encoder.dim), dtype=np.float32)
    chunk = 1024
    for start in range(0, len(order), chunk):
        part = order[start : start + chunk]
        out[part] = encoder.encode([texts[i] for i in part])
        progress(stage, min(start + chunk, len(order)), len(order))
    return out


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(f1_score(y_true, y_pred, average="macro", labels=range(len(LABELS)), zero_division=0))


def fit(
    config: HeadConfig,
    opts: TrainOptions,
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    progress: Progress,
) -> tuple[ClassifierHead, list[dict]]:
    torch.manual_seed(opts.seed)
    head = ClassifierHead(config)
    counts = np.bincount(y, minlength=len(LABELS)).astype(np.float64)
    weights = (counts.sum() / np.clip(counts, 1, None)) ** opts.class_weight_power
    weights = torch.tensor(weights / (weights * counts).sum() * counts.sum(), dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    optimiser = torch.optim.AdamW(head.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=opts.epochs)
    xt, yt, xv = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(x_val)
    generator = torch.Generator().manual_seed(opts.seed)
    best_f1, best_state, history = -1.0, None, []
    for epoch in range(1, opts.epochs + 1):
        head.train()
        total = 0.0
        for batch in torch.randperm(len(xt), generator=generator).split(opts.batch_size):
            optimiser.zero_grad()
            loss = loss_fn(head(xt[batch]), yt[batch])
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        scheduler.step()
        head.eval()
        with torch.inference_mode():
            pred = head(xv).argmax(dim=1).numpy()
        row = {
            "epoch": epoch,
            "loss": total / len(xt),
            "val_accuracy": float(accuracy_score(y_val, pred)),
            "val_macro_f1": macro_f1(y_val, pred),
        }
        history.append(row)
        if row["val_macro_f1"] > best_f1:
            best_f1, best_state = row["val_macro_f1"], {k: v.clone() for k, v in head.state_dict().items()}
        progress(f"train (val macro-F1 {row['val_macro_f1']:.3f})", epoch, opts.epochs)
    assert best_state is not None
    head.load_state_dict(best_state)
    return head.eval(), history


def tune_offsets(logits: np.ndarray, y: np.ndarray, max_accuracy_drop: float, rounds: int = 4) -> np.ndarray:
    """Per-class additive logit offsets by coordinate ascent on validation macro-F1.

    An offset is kept only while validation accuracy stays within `max_accuracy_drop` of the
    unadjusted model: the goal is both figures high, not macro-F1 bought with accuracy.
    """
    offsets = np.zeros(logits.shape[1])
    floor = accuracy_score(y, logits.argmax(1)) - max_accuracy_drop
    best = macro_f1(y, logits.argmax(1))
    grid = np.linspace(-3.0, 3.0, 61)
    for _ in range(rounds):
        improved = False
        for k in range(logits.shape[1]):
            for value in grid:
                trial = offsets.copy()
                trial[k] = value
                pred = (logits + trial).argmax(1)
                f1 = macro_f1(y, pred)
                if f1 > best + 1e-6 and accuracy_score(y, pred) >= floor:
                    best, offsets, improved = f1, trial, True
        if not improved:
            break
    return offsets


def train_head(opts: TrainOptions, progress: Progress) -> dict:
    started = time.perf_counter()
    texts, y = load_labelled(opts.train_file)
    train_idx, val_idx = stratified_indices(y, opts.val_frac, opts.seed)
    encoder = SentenceEncoder(opts.encoder, max_length=opts.max_length, batch_size=opts.encode_batch_size)
    x_all = embed(encoder, texts, progress, "embed")
    embedded_s = time.perf_counter() - started
    x, x_val, y_train, y_val = x_all[train_idx], x_all[val_idx], y[train_idx], y[val_idx]

    config = HeadConfig(
        labels=list(LABELS),
        input_dim=encoder.dim,
        hidden_dim=opts.hidden_dim,
        dropout=opts.dropout,
        encoder=encoder.model_id,
        max_length=opts.max_length,
        logit_adjustment=[0.0] * len(LABELS),
    )
    head, history = fit(config, opts, x, y_train, x_val, y_val, progress)
    with torch.inference_mode():
        val_logits = head(torch.from_numpy(x_val)).numpy()
    plain = val_logits.argmax(1)
    offsets = (
        tune_offsets(val_logits, y_val, opts.max_accuracy_drop)
        if opts.tune_offsets
        else np.zeros(len(LABELS))
    )
    adjusted = (val_logits + offsets).argmax(1)

    report = {
        "train_file": str(opts.train_file),
        "rows": len(texts),
        "train_rows": len(train_idx),
        "validation_rows": len(val_idx),
        "class_counts": {
            label: int(c) for label, c in zip(LABELS, np.bincount(y, minlength=len(LABELS)), strict=True)
        },
        "best_epoch": max(history, key=lambda r: r["val_macro_f1"])["epoch"],
        "validation_before_offsets": {
            "accuracy": float(accuracy_score(y_val, plain)),
            "macro_f1": macro_f1(y_val, plain),
        },
        "validation": {
            "accuracy": float(accuracy_score(y_val, adjusted)),
            "macro_f1": macro_f1(y_val, adjusted),
        },
        "embed_seconds": round(embedded_s, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
        "history": history,
    }
    head.config = head.config.model_copy(
        update={"logit_adjustment": [float(o) for o in offsets], "training": report}
    )
    head.adjustment.copy_(torch.tensor(offsets, dtype=torch.float32))
    report["version"] = save_head(head, opts.out_dir)
    return report
