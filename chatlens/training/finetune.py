"""`finetune`: train an encoder end to end for the 8 labels, log it to MLflow and register a version.

The same validation discipline as the head (`chatlens.training.head`): a stratified slice of the training file
picks the epoch (by macro-F1) and the logit adjustment; the test split is never used for a choice.
"""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import accuracy_score, classification_report
from transformers import AutoModel, AutoTokenizer

from chatlens.backends.classifiers.finetuned import FineTunedModel, predict_logits, save_finetuned, train_step
from chatlens.backends.encoder import load_pretrained, resolve_encoder
from chatlens.backends.hf import length_sorted_batches, pad_batch, resolve_device
from chatlens.core.labels import LABELS
from chatlens.training.head import class_weights, load_labelled, macro_f1, stratified_indices, tune_adjustment

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class FineTuneOptions:
    train_file: Path
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


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def finetune(opts: FineTuneOptions, progress: Progress) -> tuple[dict, FineTunedModel, object]:
    started = time.perf_counter()
    torch.manual_seed(opts.seed)
    rng = np.random.default_rng(opts.seed)
    texts, y = load_labelled(opts.train_file)
    if opts.limit:
        texts, y = texts[: opts.limit], y[: opts.limit]
    train_idx, val_idx = stratified_indices(y, opts.val_frac, opts.seed)
    source, base_id = resolve_encoder(opts.base)
    tokenizer = load_pretrained(source, AutoTokenizer)
    device = resolve_device(opts.device)
    encoder = load_pretrained(source, AutoModel, attn_implementation="sdpa")
    model = FineTunedModel(encoder, len(LABELS)).to(device)

    def encode(rows: np.ndarray) -> list[list[int]]:
        return tokenizer([texts[i] for i in rows], truncation=True, max_length=opts.max_length)["input_ids"]

    ids_train, ids_val = encode(train_idx), encode(val_idx)
    y_train, y_val = y[train_idx], y[val_idx]
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
        row = {
            "epoch": epoch,
            "loss": round(total / seen, 5),
            "val_accuracy": round(float(accuracy_score(y_val, predicted)), 4),
            "val_macro_f1": round(macro_f1(y_val, predicted), 4),
        }
        history.append(row)
        if row["val_macro_f1"] > best[0]:
            best = (
                row["val_macro_f1"],
                epoch,
                {k: v.detach().clone() for k, v in model.state_dict().items()},
            )
    model.load_state_dict(best[2])
    val_logits = predict_logits(model, ids_val, pad, device)
    tau, adjustment = tune_adjustment(
        val_logits, y_val, np.bincount(y_train, minlength=len(LABELS)) / len(y_train)
    )
    adjusted = (val_logits + adjustment).argmax(1)
    report = {
        "base": base_id,
        "train_file": str(opts.train_file),
        "train_file_sha256": file_hash(opts.train_file),
        "rows": len(texts),
        "validation_rows": len(val_idx),
        "best_epoch": best[1],
        "tau": tau,
        "validation": {
            "accuracy": round(float(accuracy_score(y_val, adjusted)), 4),
            "macro_f1": round(macro_f1(y_val, adjusted), 4),
        },
        "validation_report": classification_report(
            y_val, adjusted, labels=range(len(LABELS)), target_names=list(LABELS), zero_division=0
        ),
        "device": str(device),
        "seconds": round(time.perf_counter() - started, 1),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
        "history": history,
    }
    card = {
        "labels": list(LABELS),
        "base": base_id,
        "max_length": opts.max_length,
        "logit_adjustment": [float(a) for a in adjustment],
        "training": {k: v for k, v in report.items() if k != "validation_report"},
    }
    save_finetuned(model.cpu(), tokenizer, card, opts.out_dir)
    return report, model, tokenizer


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
    from eval.tracking import quiet_mlflow

    mlflow = quiet_mlflow()

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("chatlens-train")
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    with mlflow.start_run(run_name=f"finetune {report['base']}") as run:
        mlflow.log_params(
            {**report["options"], "base": report["base"], "train_file_sha256": report["train_file_sha256"]}
        )
        for row in report["history"]:
            mlflow.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=row["epoch"])
        final = {"best_epoch": report["best_epoch"], "tau": report["tau"], "seconds": report["seconds"]}
        final |= {f"val_{k}_final": v for k, v in report["validation"].items()}
        mlflow.log_metrics(final)
        with tempfile.TemporaryDirectory() as tmp:
            plot_history(report["history"], Path(tmp) / "curves.png")
            (Path(tmp) / "validation_report.txt").write_text(report["validation_report"], encoding="utf-8")
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
