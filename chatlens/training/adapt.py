"""`adapt`: train a LoRA adapter of the encoder together with the head, end to end.

What it writes is what `chatlens.backends.head` already serves plus one directory: `head.safetensors` and
`head.json` as for a frozen head, and `adapter/` (peft's `save_pretrained` layout, a few MB) that the
serving encoder folds into its weights at load (`chatlens.backends.encoder.merge_adapter`). The
features go through `pooled_states`, the function serving uses, so training and serving cannot drift.

The validation discipline is every trainer's (`chatlens.training.data`): whole conversations held out
of the training files pick the epoch and the logit adjustment; test files are never read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from chatlens.backends.encoder import Pooling, SentenceEncoder, pooled_states
from chatlens.backends.head import HeadConfig
from chatlens.backends.head_module import ClassifierHead, save_head
from chatlens.backends.hf import length_sorted_batches, pad_batch, resolve_device
from chatlens.core.labels import LABELS
from chatlens.training.data import load_split
from chatlens.training.imbalance import class_weights, tune_adjustment
from chatlens.training.report import figures, plain_options, save_predictions, set_card, validation_report

Progress = Callable[[str, int, int], None]  # (stage, done, total)

# The attention projections of the encoder families we serve: MPNet names them q/k/v/o, BERT (MiniLM)
# query/key/value. The feed-forward layers are left out: four times the adapter size for them did
# not pay on validation in the tiny-data runs, and the adapter must stay small enough to commit.
TARGET_MODULES = {"mpnet": ["q", "k", "v", "o"], "bert": ["query", "key", "value"]}


@dataclass(frozen=True)
class AdaptOptions:
    train_files: tuple[Path, ...]
    out_dir: Path
    encoder: str | None = None  # None = the bundled MiniLM; a catalog name, HF id or directory
    models_dir: Path | None = None
    rank: int = 8
    alpha: int = 16
    lora_dropout: float = 0.1
    epochs: int = 3
    lr: float = 3e-4  # the adapter's
    head_lr: float = 1e-3
    weight_decay: float = 1e-2
    dropout: float = 0.1  # the head's
    batch_size: int = 32
    max_length: int = 128
    class_weight_power: float = 0.5
    pooling: Pooling = Pooling.LAYER_MEANS
    val_frac: float = 0.15
    seed: int = 0
    cap_per_class: int | None = None
    device: str = "auto"
    limit: int | None = None  # the first N rows only (smoke runs)
    predictions: Path | None = None  # write the validation logits here (.npz)


def adapt(opts: AdaptOptions, progress: Progress) -> tuple[dict, np.ndarray]:
    """Train, save to `opts.out_dir`; return the report and the adjusted validation logits."""
    from peft import LoraConfig, get_peft_model

    started = time.perf_counter()
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    split = load_split(opts.train_files, opts.val_frac, opts.seed, opts.cap_per_class, opts.limit)
    data, train_idx, val_idx = split.data, split.train, split.val
    device = resolve_device(opts.device)
    encoder = SentenceEncoder(
        opts.encoder, max_length=opts.max_length, batch_size=256, models_dir=opts.models_dir, device=device
    )
    kind = str(encoder.model.config.model_type)
    if kind not in TARGET_MODULES:
        raise ValueError(f"no LoRA target modules known for a {kind!r} encoder: add them to TARGET_MODULES")

    config = HeadConfig(
        labels=list(LABELS),
        input_dim=encoder.dim(opts.pooling),
        pooling=opts.pooling,
        dropout=opts.dropout,
        encoder=encoder.model_id,
        max_length=encoder.max_length,
        logit_adjustment=[0.0] * len(LABELS),
    )
    head = ClassifierHead(config)
    # The head standardises its inputs; the frozen encoder's statistics on a sample of the training
    # rows are as good a fixed affine map as any, and cost one pass over a few thousand rows.
    sample = rng.choice(train_idx, min(4096, len(train_idx)), replace=False)
    frozen = encoder.encode([data.texts[i] for i in sample], opts.pooling)
    head.input_mean.copy_(torch.from_numpy(frozen.mean(axis=0)))
    head.input_std.copy_(torch.from_numpy(frozen.std(axis=0) + 1e-6))
    head.to(device)

    lora = LoraConfig(
        r=opts.rank,
        lora_alpha=opts.alpha,
        lora_dropout=opts.lora_dropout,
        target_modules=TARGET_MODULES[kind],
        bias="none",
    )
    model = get_peft_model(encoder.model, lora)
    ids = encoder.tokenizer(data.texts, truncation=True, max_length=encoder.max_length)["input_ids"]
    ids_train = [ids[i] for i in train_idx]
    y_train = torch.from_numpy(data.y[train_idx]).to(device)
    y_val, w_val = data.y[val_idx], data.weights[val_idx]
    kept = np.bincount(data.y, minlength=len(LABELS))
    represented = data.counts / np.clip(kept, 1, None)
    weights = class_weights(data.y[train_idx], opts.class_weight_power, represented).to(device)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(
        [{"params": trainable, "lr": opts.lr}, {"params": head.parameters(), "lr": opts.head_lr}],
        weight_decay=opts.weight_decay,
    )
    steps = opts.epochs * len(length_sorted_batches(ids_train, opts.batch_size, None))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=[opts.lr, opts.head_lr], total_steps=steps, pct_start=0.06, anneal_strategy="linear"
    )
    pad = int(encoder.tokenizer.pad_token_id)
    history: list[dict] = []
    best: tuple[float, int, dict, dict, np.ndarray] | None = None
    done = 0
    for epoch in range(1, opts.epochs + 1):
        model.train()
        head.train()
        total, seen = 0.0, 0
        for chunk in length_sorted_batches(ids_train, opts.batch_size, rng):
            batch = pad_batch([ids_train[i] for i in chunk], pad, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = head(pooled_states(model, batch, opts.pooling).float())
            loss = loss_fn(logits.float(), y_train[torch.from_numpy(chunk).to(device)])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total, seen, done = total + float(loss.detach()) * len(chunk), seen + len(chunk), done + 1
            progress(f"epoch {epoch}/{opts.epochs} (loss {total / seen:.3f})", done, steps)
        val_logits = _logits(model, head, [ids[i] for i in val_idx], pad, device, opts.pooling)
        predicted = val_logits.argmax(1)
        row = {"epoch": epoch, "loss": round(total / seen, 5)}
        row |= {f"val_{k}": v for k, v in figures(y_val, predicted, w_val).items()}
        history.append(row)
        if best is None or row["val_macro_f1"] > best[0]:
            lora_state = {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}
            head_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
            best = (row["val_macro_f1"], epoch, lora_state, head_state, val_logits)
    assert best is not None
    _, best_epoch, lora_state, head_state, val_logits = best
    model.load_state_dict(lora_state, strict=False)
    head.load_state_dict(head_state)

    prior = data.counts / data.counts.sum()
    tau, adjustment = tune_adjustment(val_logits, y_val, prior, w_val)
    plain, adjusted = val_logits.argmax(1), (val_logits + adjustment).argmax(1)
    if opts.predictions:
        save_predictions(opts.predictions, val_logits, y_val, w_val, prior)
    report = {
        **validation_report(split, opts.train_files, tau, plain, adjusted),
        "adapter": {
            "method": "lora",
            "rank": opts.rank,
            "alpha": opts.alpha,
            "targets": TARGET_MODULES[kind],
        },
        "best_epoch": best_epoch,
        "device": str(device),
        "seconds": round(time.perf_counter() - started, 1),
        "options": plain_options(opts),
        "history": history,
    }
    set_card(head, adjustment, report)
    adapter_dir = opts.out_dir / "adapter"
    model.save_pretrained(str(adapter_dir))
    report["version"] = save_head(head.cpu(), opts.out_dir)
    return report, val_logits + adjustment


@torch.inference_mode()
def _logits(
    model: torch.nn.Module,
    head: ClassifierHead,
    ids: list[list[int]],
    pad: int,
    device: torch.device,
    pooling: Pooling,
) -> np.ndarray:
    model.eval()
    head.eval()
    out = np.zeros((len(ids), len(LABELS)), dtype=np.float32)
    for chunk in length_sorted_batches(ids, 256, None):
        features = pooled_states(model, pad_batch([ids[i] for i in chunk], pad, device), pooling)
        out[chunk] = head(features.float()).float().cpu().numpy()
    return out
