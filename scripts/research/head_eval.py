"""Score classifier heads on frozen MiniLM features of labelled files, with conversation-bootstrap intervals.

The features are the worker's (layer means, max length 256), computed by --runtime through the serving
factory (`open_encoder`) and cached by `chatlens.training.features`, so that each file is encoded once for
every head compared. The rows are read by the producer's reader (`producer.table.read_table`), the
figures are eval's (`eval.metrics`).
The 95% intervals resample whole conversations (1,000 draws, seed 0); `paired` is the difference to the
first head on the same resampled conversations.

    python scripts/research/head_eval.py --file test.csv --file valid-heldout.csv \
        --head shipped=chatlens/backends/default_head --head new=OUT/head-full \
        --cache OUT/featcache --json OUT/head-eval.json [--raw]

`--raw` also scores each head without its logit adjustment (tau 0).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
sys.path.insert(0, str(Path(__file__).resolve().parent))

from chatlens.backends.encoder import Pooling
from chatlens.backends.head_module import load_head
from chatlens.core.labels import LABELS
from eval.metrics import confusion, macro_f1
from producer.table import read_table

DRAWS = 1000


def figures(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    m = confusion(y, p, len(LABELS))
    return float(np.trace(m) / m.sum()), float(macro_f1(m))


def bootstrap(y: np.ndarray, preds: list[np.ndarray], groups: np.ndarray) -> list[dict]:
    """Per prediction set: the 95% interval of accuracy and macro-F1, and of the paired difference to
    the first set, over resampled conversations."""
    names, inverse = np.unique(groups, return_inverse=True)
    rows_of = [np.flatnonzero(inverse == g) for g in range(len(names))]
    rng = np.random.default_rng(0)
    draws = np.zeros((DRAWS, len(preds), 2))
    for d in range(DRAWS):
        index = np.concatenate([rows_of[g] for g in rng.integers(0, len(names), len(names))])
        for k, p in enumerate(preds):
            draws[d, k] = figures(y[index], p[index])
    out = []
    for k in range(len(preds)):
        lo, hi = np.percentile(draws[:, k], [2.5, 97.5], axis=0)
        diff = draws[:, k] - draws[:, 0]
        dlo, dhi = np.percentile(diff, [2.5, 97.5], axis=0)
        out.append(
            {
                "accuracy_ci": [round(lo[0], 4), round(hi[0], 4)],
                "macro_f1_ci": [round(lo[1], 4), round(hi[1], 4)],
                "paired_accuracy_ci": [round(dlo[0], 4), round(dhi[0], 4)],
                "paired_macro_f1_ci": [round(dlo[1], 4), round(dhi[1], 4)],
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--file", type=Path, action="append", required=True)
    parser.add_argument("--head", action="append", default=[], help="NAME=DIR")
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--raw", action="store_true")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument(
        "--key-runtime", help="with --encoded-only: the runtime in the cache key (none: an older torch cache)"
    )
    parser.add_argument(
        "--runtime", default="torch", help="what computes the features: torch, onnx, onnx-int8"
    )
    parser.add_argument(
        "--encoded-only", action="store_true", help="score the rows the cache holds so far, encode nothing"
    )
    args = parser.parse_args()
    encoder = None
    if not args.encoded_only:
        from chatlens.backends.runtime import EncoderSpec, Runtime, open_encoder
        from chatlens.core.settings import get_settings

        runtime = Runtime(args.runtime)
        spec = EncoderSpec("default", None, get_settings().models_dir)
        exports = get_settings().exports_path
        encoder = open_encoder(
            spec, runtime, exports, max_length=args.max_length, batch_size=32, shared=False
        )
    heads = {name: load_head(Path(d)) for name, d in (h.split("=", 1) for h in args.head)}
    from chatlens.training.features import featurise

    result: dict = {}
    for path in args.file:
        rows = read_table(path).rows
        rows = rows[rows["label"].notna()]
        texts = rows["message"].tolist()
        y = rows["label"].map({label: i for i, label in enumerate(LABELS)}).to_numpy(dtype=np.int64)
        groups = rows["conversation_id"].to_numpy(dtype=object)
        if args.encoded_only:
            from partial_features import encoded

            keep, features = encoded(args.cache, texts, args.max_length, args.key_runtime)
            y, groups = y[keep], groups[keep]
        else:
            features = featurise(encoder, texts, Pooling.LAYER_MEANS, lambda *a: None, args.cache)
        x = torch.from_numpy(features)
        names, preds = [], []
        for name, head in heads.items():
            with torch.inference_mode():
                raw = head(x)
                preds.append((raw + head.adjustment).argmax(1).numpy())
                names.append(name)
                if args.raw:
                    preds.append(raw.argmax(1).numpy())
                    names.append(f"{name} (tau 0)")
        scored = {}
        for name, p, ci in zip(names, preds, bootstrap(y, preds, groups) if preds else [], strict=True):
            acc, f1 = figures(y, p)
            scored[name] = {"accuracy": round(acc, 4), "macro_f1": round(f1, 4), **ci}
            print(
                f"{path.name:24} {name:28} acc {acc:.4f} {ci['accuracy_ci']}  macro-F1 {f1:.4f} "
                f"{ci['macro_f1_ci']}  paired vs {names[0]}: "
                f"{ci['paired_accuracy_ci']} {ci['paired_macro_f1_ci']}",
                flush=True,
            )
        result[str(path)] = {"rows": len(y), "conversations": len(set(groups.tolist())), "heads": scored}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
