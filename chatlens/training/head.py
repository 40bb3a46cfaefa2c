"""`train_head`: fit a classifier head on frozen encoder features of one or more labelled files.

The test split is never touched. A validation part of the training files, whole conversations (see
chatlens.training.data), reports the figures and chooses the one free knob of the imbalance remedy: the
strength tau of the logit adjustment (logits - tau * log prior). The loss is class-weighted by
(1/frequency)^0.5. Per-class thresholds were tried and dropped: with 20-30 validation examples of the
rarest labels they fit the slice, not the labels (see README). With a per-class cap, rows carry
count/kept weights, so the loss, the prior and the validation figures see the files' own label mix.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score

from chatlens.backends.encoder import Pooling, SentenceEncoder
from chatlens.backends.head import ClassifierHead, HeadConfig, save_head
from chatlens.backends.hf import resolve_device
from chatlens.core.errors import ChatlensError
from chatlens.core.labels import LABELS
from chatlens.training.data import Labelled, grouped_indices, load_files
from chatlens.training.features import featurise

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class TrainOptions:
    train_files: tuple[Path, ...]
    out_dir: Path
    val_frac: float = 0.15
    seed: int = 0
    epochs: int = 15
    lr: float = 1e-3
    weight_decay: float = 1e-2
    hidden_dim: int = 0  # 0 = linear: as good as a 512-wide MLP on validation, and 64x smaller
    dropout: float = 0.5
    class_weight_power: float = 0.5  # loss weight ~ (1/frequency)^power: 0 = none, 1 = inverse frequency
    batch_size: int = 128
    tune_adjustment: bool = True
    pooling: Pooling = Pooling.LAYER_MEANS
    encoder: str | None = None  # None = the bundled MiniLM; a catalog name, HF id or directory
    models_dir: Path | None = None  # where catalog names resolve
    max_length: int = 256
    encode_batch_size: int = 32
    cap_per_class: int | None = None  # keep at most this many rows of a class (rare ones stay whole)
    cache_dir: Path | None = None  # encoder features cached here across runs
    predictions: Path | None = None  # write the validation logits here (.npz) to study operating points
    device: str = "cpu"  # where the encoder runs ("auto" = a GPU when there is one); the head fits on CPU


def load_labelled(path: Path) -> tuple[list[str], np.ndarray]:
    from producer.table import read_table

    rows = read_table(path).rows
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


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, weight: np.ndarray | None = None) -> float:
    return float(
        f1_score(
            y_true, y_pred, average="macro", labels=range(len(LABELS)), zero_division=0, sample_weight=weight
        )
    )


def accuracy(y_true: np.ndarray, y_pred: np.ndarray, weight: np.ndarray | None = None) -> float:
    return float(accuracy_score(y_true, y_pred, sample_weight=weight))


def class_weights(y: np.ndarray, power: float, represented: np.ndarray | None = None) -> torch.Tensor:
    """(1/frequency)^power, scaled so that the mean weight over the training rows is 1. `represented`
    (rows each kept row stands for, per class) turns capped counts back into the files' frequencies."""
    kept = np.bincount(y, minlength=len(LABELS)).astype(np.float64)
    scale = np.ones(len(LABELS)) if represented is None else represented
    counts = kept * scale
    weights = (counts.sum() / np.clip(counts, 1e-9, None)) ** power * scale
    return torch.tensor(weights / (weights * kept).sum() * kept.sum(), dtype=torch.float32)


def fit(
    config: HeadConfig,
    opts: TrainOptions,
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    progress: Progress,
    represented: np.ndarray | None = None,
    w_val: np.ndarray | None = None,
) -> tuple[ClassifierHead, list[dict]]:
    """A fixed number of epochs: picking the epoch by validation macro-F1 chased noise in the rare labels."""
    torch.manual_seed(opts.seed)
    head = ClassifierHead(config)
    head.input_mean.copy_(torch.from_numpy(x.mean(axis=0)))
    head.input_std.copy_(torch.from_numpy(x.std(axis=0) + 1e-6))
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights(y, opts.class_weight_power, represented))
    optimiser = torch.optim.AdamW(head.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=opts.epochs)
    xt, yt, xv = torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(x_val)
    generator = torch.Generator().manual_seed(opts.seed)
    history = []
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
            "loss": round(total / len(xt), 5),
            "val_accuracy": round(accuracy(y_val, pred, w_val), 4),
            "val_macro_f1": round(macro_f1(y_val, pred, w_val), 4),
        }
        history.append(row)
        progress(f"train (val macro-F1 {row['val_macro_f1']:.3f})", epoch, opts.epochs)
    return head.eval(), history


def tune_adjustment(
    logits: np.ndarray, y: np.ndarray, prior: np.ndarray, weight: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """The tau in logits - tau * log(prior) with the best validation macro-F1 (ties: closest to 0)."""
    log_prior = np.log(np.clip(prior, 1e-12, None))
    taus = sorted(np.round(np.arange(-1.0, 2.0001, 0.05), 2), key=abs)
    best = max(taus, key=lambda tau: macro_f1(y, (logits - tau * log_prior).argmax(1), weight))
    return float(best), -best * log_prior


def train_head(opts: TrainOptions, progress: Progress) -> dict:
    started = time.perf_counter()
    data = load_files(list(opts.train_files), opts.cap_per_class, opts.seed)
    train_idx, val_idx = grouped_indices(data.groups, opts.val_frac, opts.seed)
    encoder = SentenceEncoder(
        opts.encoder,
        max_length=opts.max_length,
        batch_size=opts.encode_batch_size,
        models_dir=opts.models_dir,
        device=resolve_device(opts.device),
    )
    x_all = featurise(encoder, data.texts, opts.pooling, progress, opts.cache_dir)
    encoded_s = time.perf_counter() - started
    x, x_val = x_all[train_idx], x_all[val_idx]
    y, y_train, y_val, w_val = data.y, data.y[train_idx], data.y[val_idx], data.weights[val_idx]
    kept = np.bincount(y, minlength=len(LABELS))
    represented = data.counts / np.clip(kept, 1, None)

    config = HeadConfig(
        labels=list(LABELS),
        input_dim=x.shape[1],
        pooling=opts.pooling,
        hidden_dim=opts.hidden_dim,
        dropout=opts.dropout,
        encoder=encoder.model_id,
        max_length=opts.max_length,
        logit_adjustment=[0.0] * len(LABELS),
    )
    head, history = fit(config, opts, x, y_train, x_val, y_val, progress, represented, w_val)
    with torch.inference_mode():
        val_logits = head(torch.from_numpy(x_val)).numpy()
    prior = data.counts / data.counts.sum()  # the files' label mix, not the capped one
    tau, adjustment = (
        tune_adjustment(val_logits, y_val, prior, w_val)
        if opts.tune_adjustment
        else (0.0, np.zeros(len(LABELS)))
    )
    plain, adjusted = val_logits.argmax(1), (val_logits + adjustment).argmax(1)
    if opts.predictions:
        save_predictions(opts.predictions, val_logits, y_val, w_val, prior)

    report = {
        **validation_report(data, opts.train_files, train_idx, val_idx, tau, plain, adjusted),
        "kept_counts": {label: int(c) for label, c in zip(LABELS, kept, strict=True)},
        "encode_seconds": round(encoded_s, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "options": {k: _plain(v) for k, v in asdict(opts).items()},
        "history": history,
    }
    set_card(head, adjustment, report)
    report["version"] = save_head(head, opts.out_dir)
    return report


def set_card(head: ClassifierHead, adjustment: np.ndarray, report: dict) -> None:
    """The tuned logit adjustment, in the weights and in the card, and the training report in the card."""
    head.config = head.config.model_copy(
        update={"logit_adjustment": [float(a) for a in adjustment], "training": report}
    )
    head.adjustment.copy_(torch.tensor(adjustment, dtype=torch.float32))


def validation_report(
    data: Labelled,
    train_files: tuple[Path, ...],
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    tau: float,
    plain: np.ndarray,
    adjusted: np.ndarray,
) -> dict:
    """What a head's card says of its data and validation, for the frozen and the adapted trainer alike."""
    y_val, w_val = data.y[val_idx], data.weights[val_idx]
    return {
        "train_files": [str(f) for f in train_files],
        "data_sha256": data.digest,
        "rows": len(data.texts),
        "train_rows": len(train_idx),
        "validation_rows": len(val_idx),
        "validation_conversations": len(set(data.groups[val_idx].tolist())),
        "class_counts": {label: int(c) for label, c in zip(LABELS, data.counts, strict=True)},
        "dropped_by_cleaning": data.dropped,
        "tau": tau,
        "validation_before_adjustment": {
            "accuracy": round(accuracy(y_val, plain, w_val), 4),
            "macro_f1": round(macro_f1(y_val, plain, w_val), 4),
        },
        "validation": {
            "accuracy": round(accuracy(y_val, adjusted, w_val), 4),
            "macro_f1": round(macro_f1(y_val, adjusted, w_val), 4),
        },
    }


def save_predictions(
    path: Path, logits: np.ndarray, y: np.ndarray, weights: np.ndarray, prior: np.ndarray
) -> None:
    """The validation rows' raw logits, labels, weights and the class prior: enough to redo the logit
    adjustment for another objective (say, accuracy at a macro-F1 floor) without re-encoding."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, logits=logits, y=y, weights=weights, prior=prior, labels=np.array(LABELS))


def _plain(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value
