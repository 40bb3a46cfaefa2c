"""The fine-tuning sweep behind the README's "how far MiniLM goes" table (GPU; a few minutes).

The same recipe as `chatlens train --finetune` (mean-pooled encoder + dropout + linear head, AdamW with a
one-cycle schedule, class-weighted cross-entropy, length-sorted batches, bf16 autocast) with one knob
changed per configuration. Every run saves its validation and test logits after each epoch, so the
analysis (epoch and logit adjustment chosen on validation only, ensembles) runs afterwards on any CPU.

    python scripts/research/finetune_sweep.py prepare DIR --train train.csv --test test.csv
                                                  # here: labelled rows, validation slice, MiniLM fp16
    python scripts/research/finetune_sweep.py run DIR OUT     # on the GPU machine: OUT/<config>.npz
    python scripts/research/finetune_sweep.py report DIR OUT  # here: the table

`run` needs torch and transformers only (the GPU machine has no pydantic); `prepare` and `report` use
chatlens itself, so that the cleaning and the validation slice are exactly the trainer's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

# None of these needs pydantic, which the GPU machine lacks.
from chatlens.backends.classifiers.finetuned import FineTunedModel, predict_logits, train_step
from chatlens.backends.encoder import mean_pool
from chatlens.backends.hf import length_sorted_batches, pad_batch

CONFIGS: dict[str, dict] = {
    "product s0": dict(lr=5e-5, epochs=4, power=0.5, seed=0),
    "product s1": dict(lr=5e-5, epochs=4, power=0.5, seed=1),
    "product s2": dict(lr=5e-5, epochs=4, power=0.5, seed=2),
    "lr 1e-4": dict(lr=1e-4, epochs=4, power=0.5, seed=0),
    "batch 16": dict(lr=5e-5, epochs=4, power=0.5, seed=0, batch=16),
    "8 epochs, lr 3e-5": dict(lr=3e-5, epochs=8, power=0.5, seed=0),
    "label smoothing 0.1": dict(lr=5e-5, epochs=4, power=0.5, seed=0, smoothing=0.1),
    "all layer means s0": dict(lr=5e-5, epochs=4, power=0.5, seed=0, pool="layers"),
    "all layer means s1": dict(lr=5e-5, epochs=4, power=0.5, seed=1, pool="layers"),
    "previous turn as context": dict(lr=5e-5, epochs=4, power=0.5, seed=0, context=True),
    "weights^0.3, 6 epochs, lr 8e-5": dict(lr=8e-5, epochs=6, power=0.3, seed=0),
    "unweighted s0": dict(lr=5e-5, epochs=4, power=0.0, seed=0),
    "unweighted s1": dict(lr=5e-5, epochs=4, power=0.0, seed=1),
    "unweighted s2": dict(lr=5e-5, epochs=4, power=0.0, seed=2),
    "unweighted, 6 epochs, lr 1e-4": dict(lr=1e-4, epochs=6, power=0.0, seed=0),
    "unweighted, 1 epoch": dict(lr=5e-5, epochs=1, power=0.0, seed=0),
}
MAX_LENGTH = 128


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


# -- prepare (here) ------------------------------------------------------------------------------------
def prepare(directory: Path, train_file: Path, test_file: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    from chatlens.backends.encoder import bundled_encoder_path
    from chatlens.core.labels import LABELS
    from chatlens.training.head import stratified_indices
    from producer.table import read_table

    index = {label: i for i, label in enumerate(LABELS)}
    data: dict = {}
    for split, path in (("train", train_file), ("test", test_file)):
        rows = read_table(path).rows
        rows = rows[rows["label"].notna()].reset_index(drop=True)
        # The previous turn of the same conversation in this file (the "context" configuration).
        previous: dict[str, str] = {}
        context = [""] * len(rows)
        for i in sorted(range(len(rows)), key=lambda i: (rows["conversation_id"][i], rows["position"][i])):
            context[i] = previous.get(rows["conversation_id"][i], "")
            previous[rows["conversation_id"][i]] = rows["message"][i]
        data[split] = {
            "texts": rows["message"].tolist(),
            "y": rows["label"].map(index).tolist(),
            "context": context,
        }
    train_idx, val_idx = stratified_indices(np.array(data["train"]["y"]), 0.15, 0)
    data |= {"train_idx": train_idx.tolist(), "val_idx": val_idx.tolist()}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data.json").write_text(json.dumps(data), encoding="utf-8")
    # fp16 on disk keeps the copy small enough to carry to the GPU machine; `run` trains in fp32.
    AutoModel.from_pretrained(bundled_encoder_path()).half().save_pretrained(directory / "minilm")
    AutoTokenizer.from_pretrained(bundled_encoder_path()).save_pretrained(directory / "minilm")


# -- run (GPU machine) ---------------------------------------------------------------------------------
class LayerMeansModel(FineTunedModel):
    """The trainer's model with its head on the normalised means of every hidden state, not the last's."""

    def __init__(self, encoder: torch.nn.Module, n_labels: int) -> None:
        super().__init__(encoder, n_labels)
        config = encoder.config  # type: ignore[attr-defined]
        width = config.hidden_size * (config.num_hidden_layers + 1)
        self.head = torch.nn.Sequential(torch.nn.Dropout(0.1), torch.nn.Linear(width, n_labels))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        pooled = [
            torch.nn.functional.normalize(mean_pool(h, attention_mask), dim=-1) for h in out.hidden_states
        ]
        return self.head(torch.cat(pooled, -1))


def train_one(directory: Path, out: Path, name: str) -> None:
    from transformers import AutoModel, AutoTokenizer

    cfg = CONFIGS[name]
    started = time.perf_counter()
    torch.set_num_threads(1)  # several runs share the machine
    torch.manual_seed(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"])
    data = json.loads((directory / "data.json").read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(directory / "minilm")
    encoder = AutoModel.from_pretrained(directory / "minilm", attn_implementation="sdpa", dtype=torch.float32)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = (LayerMeansModel if cfg.get("pool") == "layers" else FineTunedModel)(encoder, 8).to(device)

    def encode(split: str, rows: list[int] | None = None) -> list[list[int]]:
        part = data[split]
        rows = list(range(len(part["texts"]))) if rows is None else rows
        if not cfg.get("context"):
            return tokenizer([part["texts"][i] for i in rows], truncation=True, max_length=MAX_LENGTH)[
                "input_ids"
            ]
        return [
            tokenizer(
                part["context"][i], part["texts"][i], truncation="longest_first", max_length=MAX_LENGTH
            )["input_ids"]
            if part["context"][i]
            else tokenizer(part["texts"][i], truncation=True, max_length=MAX_LENGTH)["input_ids"]
            for i in rows
        ]

    y = np.array(data["train"]["y"])
    train_idx, val_idx = data["train_idx"], data["val_idx"]
    ids_train, ids_val, ids_test = encode("train", train_idx), encode("train", val_idx), encode("test")
    targets = torch.tensor(y[train_idx], device=device)
    counts = np.bincount(y[train_idx], minlength=8).astype(np.float64)
    weights = (counts.sum() / counts) ** cfg["power"]
    weights = weights / (weights * counts).sum() * counts.sum()
    loss_fn = torch.nn.CrossEntropyLoss(
        weight=torch.tensor(weights, dtype=torch.float32, device=device),
        label_smoothing=cfg.get("smoothing", 0.0),
    )
    optimiser = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": cfg["lr"]},
            {"params": model.head.parameters(), "lr": 1e-3},
        ],
        weight_decay=0.01,
    )
    batch = cfg.get("batch", 32)
    steps = cfg["epochs"] * len(length_sorted_batches(ids_train, batch, None))
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=[cfg["lr"], 1e-3], total_steps=steps, pct_start=0.06, anneal_strategy="linear"
    )
    pad = tokenizer.pad_token_id
    saved: dict[str, np.ndarray] = {}
    for epoch in range(1, cfg["epochs"] + 1):
        model.train()
        for chunk in length_sorted_batches(ids_train, batch, rng):
            inputs = pad_batch([ids_train[i] for i in chunk], pad, device)
            chosen = targets[torch.from_numpy(chunk).to(device)]
            train_step(model, inputs, chosen, loss_fn, optimiser, schedule, device)
        saved[f"val{epoch}"] = predict_logits(model, ids_val, pad, device).astype(np.float16)
        saved[f"test{epoch}"] = predict_logits(model, ids_test, pad, device).astype(np.float16)
    saved["seconds"] = np.array(time.perf_counter() - started)
    np.savez_compressed(out / f"{slug(name)}.npz", **saved)
    print(f"{name}: {time.perf_counter() - started:.1f} s", flush=True)


def run(directory: Path, out: Path, parallel: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    running: list[subprocess.Popen] = []
    for name in CONFIGS:
        while sum(p.poll() is None for p in running) >= parallel:
            time.sleep(1)
        running.append(subprocess.Popen([sys.executable, __file__, "one", str(directory), str(out), name]))
    for process in running:
        process.wait()
    print(f"all: {time.perf_counter() - started:.1f} s", flush=True)


# -- report (here) -------------------------------------------------------------------------------------
def report(directory: Path, out: Path) -> None:
    from sklearn.metrics import accuracy_score, f1_score

    data = json.loads((directory / "data.json").read_text(encoding="utf-8"))
    y = np.array(data["train"]["y"])
    y_val, y_test = y[data["val_idx"]], np.array(data["test"]["y"])
    log_prior = np.log(np.bincount(y[data["train_idx"]], minlength=8) / len(data["train_idx"]))
    taus = sorted(np.round(np.arange(-1.0, 2.0001, 0.05), 2), key=abs)

    def scores(truth: np.ndarray, logits: np.ndarray) -> tuple[float, float]:
        predicted = logits.argmax(1)
        return accuracy_score(truth, predicted), f1_score(
            truth, predicted, average="macro", labels=range(8), zero_division=0
        )

    def chosen(val: np.ndarray) -> float:  # the trainer's rule: best validation macro-F1
        return max(taus, key=lambda tau: scores(y_val, val - tau * log_prior)[1])

    def line(name: str, val: np.ndarray, test: np.ndarray, extra: str = "") -> str:
        tau = chosen(val)
        va, vf = scores(y_val, val - tau * log_prior)
        ta, tf = scores(y_test, test - tau * log_prior)
        raw = scores(y_test, test)
        return (
            f"| {name} | {extra} | {tau:+.2f} | {va:.3f} / {vf:.3f} | {ta:.3f} / {tf:.3f} | "
            f"{raw[0]:.3f} / {raw[1]:.3f} |"
        )

    print(
        "| configuration | epoch, s | tau | validation acc / macro-F1 | test acc / macro-F1 | test, tau = 0 |"
    )
    print("| --- | --- | ---: | --- | --- | --- |")
    vals: list[np.ndarray] = []
    tests: list[np.ndarray] = []
    best_raw = (0.0, 0.0, "")
    for name in CONFIGS:
        path = out / f"{slug(name)}.npz"
        if not path.exists():
            continue
        saved = np.load(path)
        epochs = sorted(int(k[3:]) for k in saved.files if k.startswith("val"))
        logits = {
            e: (saved[f"val{e}"].astype(np.float32), saved[f"test{e}"].astype(np.float32)) for e in epochs
        }
        epoch = max(epochs, key=lambda e: scores(y_val, logits[e][0] - chosen(logits[e][0]) * log_prior)[1])
        print(line(name, *logits[epoch], f"{epoch}, {float(saved['seconds']):.0f}"))
        vals.append(np.log(_softmax(logits[epoch][0])))
        tests.append(np.log(_softmax(logits[epoch][1])))
        for e in epochs:  # the most accurate checkpoint of all, chosen on test: an upper bound, not a result
            accuracy, f1 = scores(y_test, logits[e][1])
            if accuracy > best_raw[0]:
                best_raw = (accuracy, f1, f"{name}, epoch {e}")
    if vals:
        print(line(f"mean of all {len(vals)} (log-probabilities)", np.mean(vals, 0), np.mean(tests, 0), "-"))
        print(
            f"\nmost accurate checkpoint on test (an oracle, chosen on test): {best_raw[2]}: "
            f"{best_raw[0]:.3f} / {best_raw[1]:.3f}"
        )


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("step", choices=["prepare", "run", "report", "one"])
    parser.add_argument("dir", type=Path)
    parser.add_argument("out", type=Path, nargs="?")
    parser.add_argument("name", nargs="?")
    parser.add_argument("--parallel", type=int, default=int(os.environ.get("PARALLEL", "8")))
    parser.add_argument("--train", type=Path, help="prepare: labelled training rows (train.csv)")
    parser.add_argument("--test", type=Path, help="prepare: the test rows (test.csv)")
    args = parser.parse_args()
    if args.step == "prepare":
        if args.train is None or args.test is None:
            parser.error("prepare needs --train and --test")
        prepare(args.dir, args.train, args.test)
    elif args.step == "run":
        run(args.dir, args.out, args.parallel)
    elif args.step == "one":
        train_one(args.dir, args.out, args.name)
    else:
        report(args.dir, args.out)


if __name__ == "__main__":
    main()
