"""Train the accurate classifier's candidates on a lent GPU: what `chatlens train` runs, called through
the library because a GPU host has torch/transformers/peft but not the service's other packages.

    python scripts/research/device_train_accurate.py --encoder DIR --train train.csv --train valid.csv \
        --out OUT frozen | lora --rank 8 --epochs 3 | context

`frozen` is `chatlens train --encoder all-mpnet-base-v2 ...`, `lora` is `chatlens train --adapt ...`
(same options), `context` scores the frozen head with the previous turn's features beside each turn's
(validation only: serving would need the producer to send the previous turn). Every candidate is
picked on the validation conversations carved from the --train files; test.csv is never read here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def progress(stage: str, done: int, total: int) -> None:
    if done == total or done % 500 == 0:
        log(f"{stage} {done}/{total}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["frozen", "lora", "context"])
    parser.add_argument("--encoder", required=True)
    parser.add_argument("--train", type=Path, action="append", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cache-dir", type=Path, default=Path("/tmp/features"))
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.mode == "frozen":
        from chatlens.training.head import TrainOptions, train_head

        report = train_head(
            TrainOptions(
                train_files=tuple(args.train), out_dir=args.out / "frozen", encoder=args.encoder,
                encode_batch_size=128, cache_dir=args.cache_dir, device=args.device,
                predictions=args.out / "frozen_val.npz",
            ),
            progress,
        )  # fmt: skip
    elif args.mode == "lora":
        from chatlens.training.adapt import AdaptOptions, adapt

        name = f"lora{args.rank}"
        report, _ = adapt(
            AdaptOptions(
                train_files=tuple(args.train), out_dir=args.out / name, encoder=args.encoder,
                rank=args.rank, alpha=2 * args.rank, epochs=args.epochs, lr=args.lr,
                batch_size=args.batch_size, device=args.device, predictions=args.out / f"{name}_val.npz",
            ),
            progress,
        )  # fmt: skip
    else:
        report = previous_turn(args)
    log(
        json.dumps(
            {k: report.get(k) for k in ("validation_before_adjustment", "validation", "history", "seconds")}
        )
    )


def previous_turn(args: argparse.Namespace) -> dict:
    """The frozen head's recipe on [features of the turn, features of the turn before it]."""
    import torch

    from chatlens.backends.encoder import Pooling, SentenceEncoder
    from chatlens.backends.head import HeadConfig
    from chatlens.core.labels import LABELS
    from chatlens.training.data import grouped_indices, load_files
    from chatlens.training.features import featurise
    from chatlens.training.head import TrainOptions, accuracy, fit, macro_f1, tune_adjustment

    opts = TrainOptions(train_files=tuple(args.train), out_dir=args.out / "context", encoder=args.encoder)
    data = load_files(list(args.train))
    encoder = SentenceEncoder(args.encoder, max_length=opts.max_length, batch_size=128, device=args.device)
    x = featurise(encoder, data.texts, Pooling.LAYER_MEANS, progress, args.cache_dir)
    # Rows are in file order, so a conversation's turns are consecutive; a first turn gets zeros.
    first = np.r_[True, data.groups[1:] != data.groups[:-1]]
    previous = np.vstack([np.zeros((1, x.shape[1]), np.float32), x[:-1]])
    previous[first] = 0.0
    both = np.hstack([x, previous])
    train_idx, val_idx = grouped_indices(data.groups, opts.val_frac, opts.seed)
    config = HeadConfig(
        labels=list(LABELS), input_dim=both.shape[1], dropout=opts.dropout, encoder=encoder.model_id,
        max_length=opts.max_length, logit_adjustment=[0.0] * len(LABELS),
    )  # fmt: skip
    y_val, w_val = data.y[val_idx], data.weights[val_idx]
    head, history = fit(config, opts, both[train_idx], data.y[train_idx], both[val_idx], y_val, progress)
    with torch.inference_mode():
        logits = head(torch.from_numpy(both[val_idx])).numpy()
    tau, adjustment = tune_adjustment(logits, y_val, data.counts / data.counts.sum(), w_val)
    plain, adjusted = logits.argmax(1), (logits + adjustment).argmax(1)
    return {
        "validation_before_adjustment": {
            "accuracy": accuracy(y_val, plain),
            "macro_f1": macro_f1(y_val, plain),
        },
        "validation": {
            "accuracy": accuracy(y_val, adjusted),
            "macro_f1": macro_f1(y_val, adjusted),
            "tau": tau,
        },
        "history": history,
    }


if __name__ == "__main__":
    main()
