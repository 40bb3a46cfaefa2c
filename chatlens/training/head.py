"""`train_head`: fit a classifier head on frozen encoder features of one or more labelled files.

The test split is never touched. A validation part of the training files, whole conversations (see
chatlens.training.data), reports the figures and chooses the one free knob of the imbalance remedy
(chatlens.training.imbalance): the strength tau of the logit adjustment. With a per-class cap, rows carry
count/kept weights, so the loss, the prior and the validation figures see the files' own label mix.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from chatlens.backends.catalog import CATALOG
from chatlens.backends.encoder_source import Pooling
from chatlens.backends.head import HeadConfig
from chatlens.backends.head_module import ClassifierHead, save_head
from chatlens.backends.hf import resolve_device
from chatlens.backends.runtime import Encoder, EncoderSpec, Runtime, open_encoder
from chatlens.core.labels import LABELS
from chatlens.training.data import load_split
from chatlens.training.features import featurise
from chatlens.training.imbalance import class_weights, tune_adjustment
from chatlens.training.report import figures, plain_options, save_predictions, set_card, validation_report

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
    # What computes the features: torch (auto means torch here), or an export's runtime (onnx, onnx-int8),
    # to train the head on the very features that runtime serves.
    runtime: Runtime = Runtime.AUTO
    exports_dir: Path | None = None  # where the exports of an onnx runtime are (CHATLENS_EXPORTS_DIR)


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
        row = {"epoch": epoch, "loss": round(total / len(xt), 5)}
        row |= {f"val_{k}": v for k, v in figures(y_val, pred, w_val).items()}
        history.append(row)
        progress(f"train (val macro-F1 {row['val_macro_f1']:.3f})", epoch, opts.epochs)
    return head.eval(), history


def training_encoder(opts: TrainOptions) -> Encoder:
    """The encoder through the serving factory: `runtime` onnx-int8 gives the int8 export's features."""
    runtime = Runtime.TORCH if opts.runtime is Runtime.AUTO else opts.runtime
    name = "default" if opts.encoder is None else "accurate" if opts.encoder in CATALOG else opts.encoder
    spec = EncoderSpec(name, opts.encoder, opts.models_dir)
    device = str(resolve_device(opts.device)) if runtime in (Runtime.TORCH, Runtime.TORCH_INT8) else "cpu"
    return open_encoder(
        spec,
        runtime,
        opts.exports_dir or Path("."),
        max_length=opts.max_length,
        batch_size=opts.encode_batch_size,
        device=device,
        shared=False,
    )


def train_head(opts: TrainOptions, progress: Progress) -> dict:
    started = time.perf_counter()
    split = load_split(opts.train_files, opts.val_frac, opts.seed, opts.cap_per_class)
    data, train_idx, val_idx = split.data, split.train, split.val
    encoder = training_encoder(opts)
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
        **validation_report(split, opts.train_files, tau, plain, adjusted),
        "kept_counts": {label: int(c) for label, c in zip(LABELS, kept, strict=True)},
        "encode_seconds": round(encoded_s, 1),
        "runtime": encoder.runtime,  # what computed the features the head was fitted on
        "seconds": round(time.perf_counter() - started, 1),
        "options": plain_options(opts),
        "history": history,
    }
    set_card(head, adjustment, report)
    report["version"] = save_head(head, opts.out_dir)
    return report
