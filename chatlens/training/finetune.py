"""`finetune`: train an encoder end to end for the 8 labels, log it to MLflow and register a version.

The same validation discipline as every trainer (`chatlens.training.data`): whole conversations held out of
the training files pick the epoch (by macro-F1) and the logit adjustment; the test split is never used for
a choice.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from chatlens.backends.classifiers.finetuned import FineTunedModel, predict_logits, save_finetuned, train_step
from chatlens.backends.encoder import load_pretrained, resolve_encoder
from chatlens.backends.hf import length_sorted_batches, pad_batch, resolve_device
from chatlens.core.labels import LABELS
from chatlens.training.data import load_split
from chatlens.training.imbalance import class_weights, tune_adjustment
from chatlens.training.report import figures, per_class_text, plain_options, validation_report

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class FineTuneOptions:
    train_files: tuple[Path, ...]
    out_dir: Path
    base: str | None = None  # None = the bundled all-MiniLM-L6-v2
    epochs: int = 4
    lr: float = 5e-5
    head_lr: float = 1e-3
    batch_size: int = 32
    max_length: int = 128
    val_frac: float = 0.15
    seed: int = 0
    class_weight_power: float = 0.5
    device: str = "auto"
    limit: int | None = None  # train on the first N rows only (smoke tests)


def finetune(opts: FineTuneOptions, progress: Progress) -> tuple[dict, np.ndarray]:
    """Train, save to `opts.out_dir`; return the report and the adjusted validation logits."""
    started = time.perf_counter()
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    split = load_split(opts.train_files, opts.val_frac, opts.seed, limit=opts.limit)
    data = split.data
    source, base_id = resolve_encoder(opts.base)
    tokenizer = load_pretrained(source, AutoTokenizer)
    device = resolve_device(opts.device)
    encoder = load_pretrained(source, AutoModel, attn_implementation="sdpa")
    model = FineTunedModel(encoder, len(LABELS)).to(device)

    def encode(rows: np.ndarray) -> list[list[int]]:
        texts = [data.texts[i] for i in rows]
        return tokenizer(texts, truncation=True, max_length=opts.max_length)["input_ids"]

    ids_train, ids_val = encode(split.train), encode(split.val)
    y_train, y_val, w_val = data.y[split.train], data.y[split.val], data.weights[split.val]
    pad = tokenizer.pad_token_id

    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights(y_train, opts.class_weight_power).to(device))
    optimiser = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": opts.lr},
            {"params": model.head.parameters(), "lr": opts.head_lr},
        ],
        weight_decay=0.01,
    )
    steps = opts.epochs * len(length_sorted_batches(ids_train, opts.batch_size, None))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=[opts.lr, opts.head_lr], total_steps=steps, pct_start=0.06, anneal_strategy="linear"
    )
    targets = torch.from_numpy(y_train).to(device)
    history: list[dict] = []
    best: tuple[float, int, dict] = (-1.0, 0, {})
    done = 0
    for epoch in range(1, opts.epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for chunk in length_sorted_batches(ids_train, opts.batch_size, rng):
            batch = pad_batch([ids_train[i] for i in chunk], pad, device)
            chosen = targets[torch.from_numpy(chunk).to(device)]
            loss = train_step(model, batch, chosen, loss_fn, optimiser, schedule, device)
            total, seen, done = total + float(loss) * len(chunk), seen + len(chunk), done + 1
            progress(f"epoch {epoch}/{opts.epochs} (loss {total / seen:.3f})", done, steps)
        predicted = predict_logits(model, ids_val, pad, device).argmax(1)
        row = {"epoch": epoch, "loss": round(total / seen, 5)}
        row |= {f"val_{k}": v for k, v in figures(y_val, predicted, w_val).items()}
        history.append(row)
        if row["val_macro_f1"] > best[0]:
            best = (
                row["val_macro_f1"],
                epoch,
                {k: v.detach().clone() for k, v in model.state_dict().items()},
            )
    model.load_state_dict(best[2])
    val_logits = predict_logits(model, ids_val, pad, device)
    prior = data.counts / data.counts.sum()
    tau, adjustment = tune_adjustment(val_logits, y_val, prior, w_val)
    plain, adjusted = val_logits.argmax(1), (val_logits + adjustment).argmax(1)
    report = {
        **validation_report(split, opts.train_files, tau, plain, adjusted),
        "base": base_id,
        "best_epoch": best[1],
        "device": str(device),
        "seconds": round(time.perf_counter() - started, 1),
        "options": plain_options(opts),
        "history": history,
    }
    card = {
        "labels": list(LABELS),
        "base": base_id,
        "max_length": opts.max_length,
        "logit_adjustment": [float(a) for a in adjustment],
        "training": report,
    }
    save_finetuned(model.cpu(), tokenizer, card, opts.out_dir)
    return report, val_logits + adjustment


def plot_history(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    left.plot(epochs, [r["loss"] for r in history], marker="o")
    left.set(title="training loss", xlabel="epoch")
    right.plot(epochs, [r["val_accuracy"] for r in history], marker="o", label="accuracy")
    right.plot(epochs, [r["val_macro_f1"] for r in history], marker="o", label="macro-F1")
    right.set(title="validation", xlabel="epoch")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def log_and_register(report: dict, model_dir: Path, tracking_uri: str, name: str) -> str:
    """One MLflow run with params, per-epoch metrics, curves and report; a new registered version."""
    from eval.tracking import use_experiment

    mlflow = use_experiment(tracking_uri, "chatlens-train")
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    with mlflow.start_run(run_name=f"finetune {report['base']}") as run:
        mlflow.log_params({**report["options"], "base": report["base"], "data_sha256": report["data_sha256"]})
        for row in report["history"]:
            mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
        final = {"best_epoch": report["best_epoch"], "tau": report["tau"], "seconds": report["seconds"]}
        final |= {f"val_{k}_final": v for k, v in report["validation"].items()}
        mlflow.log_metrics(final)
        with tempfile.TemporaryDirectory() as tmp:
            plot_history(report["history"], Path(tmp) / "curves.png")
            (Path(tmp) / "validation_report.txt").write_text(per_class_text(report), encoding="utf-8")
            mlflow.log_artifacts(tmp)
        mlflow.log_artifacts(str(model_dir), "model")
        source = mlflow.get_artifact_uri("model")
    try:
        client.get_registered_model(name)
    except Exception:
        client.create_registered_model(name, description="chatlens fine-tuned classifier (8 labels)")
    version = client.create_model_version(name, source=source, run_id=run.info.run_id)
    for key in ("accuracy", "macro_f1"):
        client.set_model_version_tag(name, version.version, f"val_{key}", str(report["validation"][key]))
    return str(version.version)
