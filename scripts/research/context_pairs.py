"""Does the previous turn help a fine-tuned MiniLM? Pair encoding against the same model without context.

Both arms fine-tune all-MiniLM-L6-v2 end to end with the product's recipe pieces (`FineTunedModel`'s
linear head, `train_step`, `class_weights`, AdamW + one-cycle, length-sorted batches) on the same rows, the
same seed and the same number of steps. The context arm reads `[CLS] current [SEP] previous [SEP]` (the
previous turn truncated first, token types 0/1) and mean-pools over the current turn's tokens only, so
that with no previous turn it is exactly the no-context model's input. The previous turn is
`read_table`'s `previous` column: what the producer stores with each message (`producer.context`).

Evaluation: the first --heldout-conversations whole conversations of the held-out file, fed in order
(each turn with its previous turn), and the first --test-rows of test.csv (shuffled single turns: almost
never a previous turn), each scored by eval.metrics with 95% conversation-bootstrap intervals and the
paired difference (context - none).

    python scripts/research/context_pairs.py train OUT --arm context|none --train train.csv \
        --train valid-train.csv --rows 3000 --max-length 96
    python scripts/research/context_pairs.py score OUT --heldout valid-heldout.csv --test test.csv
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from chatlens.backends.classifiers.finetuned import FineTunedModel, train_step
from chatlens.backends.encoder import bundled_encoder_path, load_pretrained
from chatlens.backends.hf import length_sorted_batches
from chatlens.core.labels import LABELS
from chatlens.training.imbalance import class_weights
from eval.metrics import confusion, macro_f1
from producer.table import read_table


def rows_of(path: Path) -> tuple[list[str], list[str | None], np.ndarray, np.ndarray]:
    rows = read_table(path).rows
    rows = rows[rows["label"].notna()]
    y = rows["label"].map({label: i for i, label in enumerate(LABELS)}).to_numpy(dtype=np.int64)
    return rows["message"].tolist(), rows["previous"].tolist(), y, rows["conversation_id"].to_numpy(object)


class PairModel(FineTunedModel):
    """Mean pooling over the first segment (the current turn) only; attention sees both."""

    def forward(self, input_ids, attention_mask, token_type_ids=None):  # type: ignore[override]
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        first = attention_mask * (1 - token_type_ids) if token_type_ids is not None else attention_mask
        w = first.unsqueeze(-1).to(hidden.dtype)
        return self.head((hidden * w).sum(1) / w.sum(1).clamp(min=1e-9))


def encode(tokenizer, texts, previous, arm: str, max_length: int) -> list[tuple[list[int], list[int]]]:
    out = []
    for text, prev in zip(texts, previous, strict=True):
        if arm == "context" and prev:
            try:
                enc = tokenizer(text, prev, truncation="only_second", max_length=max_length)
            except Exception:  # the current turn alone is too long: cut both
                enc = tokenizer(text, prev, truncation="longest_first", max_length=max_length)
        else:
            enc = tokenizer(text, truncation=True, max_length=max_length)
        out.append((enc["input_ids"], enc["token_type_ids"]))
    return out


def pad(items, pad_id: int) -> dict[str, torch.Tensor]:
    n = max(len(i) for i, _ in items)
    ids = torch.full((len(items), n), pad_id, dtype=torch.long)
    types = torch.zeros((len(items), n), dtype=torch.long)
    mask = torch.zeros((len(items), n), dtype=torch.long)
    for k, (i, t) in enumerate(items):
        ids[k, : len(i)], types[k, : len(t)], mask[k, : len(i)] = torch.tensor(i), torch.tensor(t), 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def train(args: argparse.Namespace) -> None:
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    texts, previous, ys = [], [], []
    for path in args.train:
        t, p, y, _ = rows_of(path)
        texts += t
        previous += p
        ys.append(y)
    y = np.concatenate(ys)
    # The same seeded rows for both arms: a share with a previous turn, the rest without.
    has = np.flatnonzero([p is not None for p in previous])
    hasnt = np.flatnonzero([p is None for p in previous])
    n_ctx = min(len(has), round(args.rows * args.context_share))
    chosen = np.sort(
        np.concatenate(
            [rng.choice(has, n_ctx, replace=False), rng.choice(hasnt, args.rows - n_ctx, replace=False)]
        )
    )
    source = bundled_encoder_path()
    tokenizer = load_pretrained(source, AutoTokenizer)
    model = PairModel(load_pretrained(source, AutoModel, attn_implementation="eager"), len(LABELS))
    items = encode(
        tokenizer, [texts[i] for i in chosen], [previous[i] for i in chosen], args.arm, args.max_length
    )
    y_train = y[chosen]
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights(y_train, 0.5))
    optimiser = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": args.lr},
            {"params": model.head.parameters(), "lr": 1e-3},
        ],
        weight_decay=0.01,
    )
    batches = length_sorted_batches([i for i, _ in items], args.batch_size, rng)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=[args.lr, 1e-3], total_steps=len(batches), pct_start=0.06, anneal_strategy="linear"
    )
    targets = torch.from_numpy(y_train)
    started, total = time.perf_counter(), 0.0
    model.train()
    for step, chunk in enumerate(batches, start=1):
        batch = pad([items[i] for i in chunk], tokenizer.pad_token_id)
        loss = train_step(
            model, batch, targets[torch.from_numpy(chunk)], loss_fn, optimiser, schedule, torch.device("cpu")
        )
        total += float(loss)
        if step % 10 == 0:
            print(
                f"step {step}/{len(batches)} loss {total / step:.3f} {time.perf_counter() - started:.0f} s",
                flush=True,
            )
    out = args.out / args.arm
    out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.contiguous() for k, v in model.state_dict().items()}, out / "model.pt")
    tokens = sum(len(i) for i, _ in items)
    (out / "train.json").write_text(
        json.dumps(
            {
                "arm": args.arm,
                "rows": len(chosen),
                "with_previous": int(n_ctx),
                "tokens": tokens,
                "steps": len(batches),
                "seconds": round(time.perf_counter() - started, 1),
                "args": {k: str(v) for k, v in vars(args).items()},
            },
            indent=2,
        )
    )


@torch.inference_mode()
def predict(model, tokenizer, texts, previous, arm, max_length) -> np.ndarray:
    model.eval()
    items = encode(tokenizer, texts, previous, arm, max_length)
    preds = np.zeros(len(items), dtype=np.int64)
    for chunk in length_sorted_batches([i for i, _ in items], 64, None):
        preds[chunk] = model(**pad([items[i] for i in chunk], tokenizer.pad_token_id)).argmax(1).numpy()
    return preds


def figures(y, p) -> tuple[float, float]:
    m = confusion(y, p, len(LABELS))
    return float(np.trace(m) / m.sum()), float(macro_f1(m))


def score(args: argparse.Namespace) -> None:
    from transformers import AutoModel, AutoTokenizer

    source = bundled_encoder_path()
    tokenizer = load_pretrained(source, AutoTokenizer)
    sets = {}
    t, p, y, g = rows_of(args.heldout)
    keep = np.isin(g, list(dict.fromkeys(g.tolist()))[: args.heldout_conversations])
    sets["heldout"] = (
        [t[i] for i in np.flatnonzero(keep)],
        [p[i] for i in np.flatnonzero(keep)],
        y[keep],
        g[keep],
    )
    t, p, y, g = rows_of(args.test)
    n = args.test_rows
    sets["test"] = (t[:n], p[:n], y[:n], g[:n])
    report: dict = {}
    for name, (texts, previous, y, groups) in sets.items():
        preds = {}
        for arm in args.arms:
            # Predictions are kept per arm and set, so one arm can be scored while the other still trains.
            kept = args.out / arm / f"predictions-{name}-{len(y)}.npy"
            if kept.exists():
                preds[arm] = np.load(kept)
                continue
            model = PairModel(load_pretrained(source, AutoModel, attn_implementation="eager"), len(LABELS))
            model.load_state_dict(torch.load(args.out / arm / "model.pt"))
            started = time.perf_counter()
            preds[arm] = predict(model, tokenizer, texts, previous, arm, args.max_length)
            np.save(kept, preds[arm])
            print(f"{name} {arm}: {time.perf_counter() - started:.0f} s", flush=True)
        names, idx = np.unique(groups, return_inverse=True)
        rows_in = [np.flatnonzero(idx == k) for k in range(len(names))]
        rng = np.random.default_rng(0)
        draws = {arm: [] for arm in args.arms}
        for _ in range(1000):
            index = np.concatenate([rows_in[k] for k in rng.integers(0, len(names), len(names))])
            for arm in args.arms:
                draws[arm].append(figures(y[index], preds[arm][index]))
        entry = {
            "rows": len(y),
            "conversations": len(names),
            "with_previous": int(sum(x is not None for x in previous)),
        }
        for arm in args.arms:
            acc, f1 = figures(y, preds[arm])
            d = np.array(draws[arm])
            entry[arm] = {
                "accuracy": round(acc, 4),
                "macro_f1": round(f1, 4),
                "accuracy_ci": np.percentile(d[:, 0], [2.5, 97.5]).round(4).tolist(),
                "macro_f1_ci": np.percentile(d[:, 1], [2.5, 97.5]).round(4).tolist(),
            }
        if set(args.arms) >= {"context", "none"}:
            diff = np.array(draws["context"]) - np.array(draws["none"])
            entry["paired_context_minus_none"] = {
                "accuracy_ci": np.percentile(diff[:, 0], [2.5, 97.5]).round(4).tolist(),
                "macro_f1_ci": np.percentile(diff[:, 1], [2.5, 97.5]).round(4).tolist(),
            }
        report[name] = entry
        print(json.dumps({name: entry}), flush=True)
    (args.out / f"scores-{'-'.join(args.arms)}.json").write_text(json.dumps(report, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("out", type=Path)
    t.add_argument("--arm", choices=["context", "none"], required=True)
    t.add_argument("--train", type=Path, action="append", required=True)
    t.add_argument("--rows", type=int, default=3000)
    t.add_argument("--context-share", type=float, default=0.8, help="share of the rows with a previous turn")
    t.add_argument("--max-length", type=int, default=96)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=5e-5)
    t.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("score")
    s.add_argument("out", type=Path)
    s.add_argument("--heldout", type=Path, required=True)
    s.add_argument("--test", type=Path, required=True)
    s.add_argument("--heldout-conversations", type=int, default=80)
    s.add_argument("--test-rows", type=int, default=1500)
    s.add_argument("--arms", nargs="+", default=["none", "context"])
    s.add_argument("--max-length", type=int, default=96)
    args = parser.parse_args()
    torch.set_num_threads(1)
    train(args) if args.cmd == "train" else score(args)


if __name__ == "__main__":
    main()
