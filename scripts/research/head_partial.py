"""`chatlens train head`'s recipe on the rows a (possibly unfinished) feature cache holds.

The same files, split (whole conversations, `val_frac` 0.15, seed 0), head, loss, epochs and logit
adjustment as `chatlens train head --train ... --cache-dir DIR`, restricted to the rows already encoded (a
uniform sample, see partial_features.py); the card says how many. With a finished cache this is the
command's own result.

    python scripts/research/head_partial.py OUT --cache DIR --train train.csv --train valid-train.csv
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
sys.path.insert(0, str(Path(__file__).resolve().parent))

from partial_features import MODEL_ID, encoded

from chatlens.backends.head import HeadConfig
from chatlens.backends.head_module import save_head
from chatlens.core.labels import LABELS
from chatlens.training.data import load_split
from chatlens.training.head import TrainOptions, fit
from chatlens.training.imbalance import tune_adjustment
from chatlens.training.report import plain_options, set_card, validation_report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--train", type=Path, action="append", required=True)
    parser.add_argument("--key-runtime", help="the runtime in the cache key (onnx-int8; none: torch, old)")
    parser.add_argument("--no-tune", action="store_true", help="tau 0 (no logit adjustment)")
    args = parser.parse_args()
    started = time.perf_counter()
    opts = TrainOptions(train_files=tuple(args.train), out_dir=args.out, tune_adjustment=not args.no_tune)
    split = load_split(opts.train_files, opts.val_frac, opts.seed)
    data = split.data
    rows, x_rows = encoded(args.cache, data.texts, opts.max_length, args.key_runtime)
    at = {r: k for k, r in enumerate(rows.tolist())}
    train_idx = np.array([i for i in split.train if i in at])
    val_idx = np.array([i for i in split.val if i in at])
    x = x_rows[[at[i] for i in train_idx]]
    x_val = x_rows[[at[i] for i in val_idx]]
    y_train, y_val, w_val = data.y[train_idx], data.y[val_idx], data.weights[val_idx]
    config = HeadConfig(labels=list(LABELS), input_dim=x.shape[1], pooling=opts.pooling, hidden_dim=0,
                        dropout=opts.dropout, encoder=MODEL_ID, max_length=opts.max_length,
                        logit_adjustment=[0.0] * len(LABELS))  # fmt: skip
    head, history = fit(config, opts, x, y_train, x_val, y_val, lambda *a: None, None, w_val)
    with torch.inference_mode():
        val_logits = head(torch.from_numpy(x_val)).numpy()
    prior = data.counts / data.counts.sum()
    tau, adjustment = (tune_adjustment(val_logits, y_val, prior, w_val) if opts.tune_adjustment
                       else (0.0, np.zeros(len(LABELS))))  # fmt: skip
    from chatlens.training.data import Split

    used = Split(data, train_idx, val_idx)
    report = {
        **validation_report(
            used, opts.train_files, tau, val_logits.argmax(1), (val_logits + adjustment).argmax(1)
        ),
        "encoded_rows": len(rows),
        "note": f"trained on the {len(rows)} of {len(data.texts)} rows encoded so far (a uniform sample)",
        "seconds": round(time.perf_counter() - started, 1),
        "options": plain_options(opts),
        "history": history,
    }
    set_card(head, adjustment, report)
    version = save_head(head, args.out)
    v0, v1 = report["validation_before_adjustment"], report["validation"]
    print(f"{len(rows)}/{len(data.texts)} rows; train {len(train_idx)} val {len(val_idx)}; "
          f"val {v0['accuracy']:.4f}/{v0['macro_f1']:.4f} -> tau {tau} "
          f"{v1['accuracy']:.4f}/{v1['macro_f1']:.4f}; "
          f"head {version} in {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
