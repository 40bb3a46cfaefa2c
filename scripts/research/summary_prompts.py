"""Compare summary instructions and lengths on a validation subset of the reference summaries.

    python scripts/research/summary_prompts.py ../shared/data/seed-results/llama-summary.json \
        --validation 12 --out prompts.json

Each variant (an instruction and a max-new-tokens bound) summarises the same seeded subset of the
reference conversations through the configured generative backend (CHATLENS_SUMMARY_BACKEND, default
llamacpp), one generation call per conversation, and is scored with ROUGE-1/2/L F1 against the
references. The winner becomes `chatlens.backends.summarisers.generative.INSTRUCTION`; the figure to
report is then `chatlens eval-summaries` on all the references.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from chatlens.backends.summariser import SUMMARISERS, conversation_text
from chatlens.backends.summarisers.generative import INSTRUCTION
from chatlens.core.settings import Settings
from eval.summary_metrics import score_summaries

EARLIER = (
    "Summarise the following conversation in 2-3 sentences. Say what the main topics are and what "
    "stance or opinion the speakers take. Reply with the summary only."
)
# The names are those of the README's table; "third-person" won and is now INSTRUCTION.
VARIANTS: dict[str, tuple[str, int]] = {
    "earlier": (EARLIER, 160),
    "earlier-short": (EARLIER, 96),
    "third-person": (INSTRUCTION, 160),
    "grounded": (
        "Summarise the following conversation in at most 60 words: the main topics in the order they come "
        "up and the opinions the speakers state. Use only what the conversation says: add no names, "
        "numbers or claims it does not contain. Reply with the summary only.",
        160,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("references", type=Path)
    parser.add_argument("--validation", type=int, default=12, help="conversations in the subset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", action="append", help="only these variants [default: all]")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rows = json.loads(args.references.read_text(encoding="utf-8"))
    chosen = sorted(np.random.default_rng(args.seed).choice(len(rows), args.validation, replace=False))
    subset = [rows[i] for i in chosen]
    settings = Settings()
    summariser = SUMMARISERS.build(settings.summary_backend, settings)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    for name in args.variant or list(VARIANTS):
        if name in results:
            continue
        instruction, max_new_tokens = VARIANTS[name]
        summariser.max_new_tokens = max_new_tokens  # type: ignore[attr-defined]
        started = time.perf_counter()
        outputs = []
        for row in subset:
            # A reference conversation is one string; its turns are not separated in the file.
            text, _, _ = summariser.generate(instruction, conversation_text([row["message"]]))  # type: ignore[attr-defined]
            outputs.append(text.strip())
        scores = score_summaries(outputs, [r["summary"] for r in subset], [r["message"] for r in subset])
        results[name] = {
            "instruction": instruction,
            "max_new_tokens": max_new_tokens,
            "conversations": [int(i) for i in chosen],
            "seconds_per_conversation": round((time.perf_counter() - started) / len(subset), 2),
            "mean_words": round(float(np.mean([len(o.split()) for o in outputs])), 1),
            "scores": scores,
            "summaries": outputs,
        }
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        print(
            name,
            json.dumps({k: v for k, v in results[name].items() if k in ("scores", "mean_words")}),
            flush=True,
        )


if __name__ == "__main__":
    main()
