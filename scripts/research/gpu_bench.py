"""The prepared GPU benchmark (a few minutes): messages/s of the Hugging Face backends at full size.

Random weights (speed does not depend on their values; nothing can be downloaded on the GPU machine),
real architectures: bart-large-mnli zero-shot with 8 hypotheses per message, roberta-base go_emotions,
and MiniLM-L6. fp32 vs bf16, sdpa vs eager, a few batch sizes. Needs torch and transformers only.

    python scripts/research/gpu_bench.py MESSAGES.txt [--messages N] [--json FILE]

MESSAGES.txt: one message per line (e.g. the message column of test.csv).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from chatlens.backends.classifiers.emotion import EmotionClassifier
from chatlens.backends.classifiers.zeroshot import ZeroShotClassifier
from chatlens.bench.speed import messages_per_second, save_full_size, tokens_per_message

# chatlens' defaults (chatlens/core/settings.py); copied so that this script needs no pydantic.
TEMPLATE = "The speaker of this message feels {}."
VERBS = {
    "Curious to dive deeper": "curious", "Neutral": "neutral", "Surprised": "surprised", "Happy": "happy",
    "Sad": "sad", "Disgusted": "disgusted", "Fearful": "afraid", "Angry": "angry",
}  # fmt: skip
MAPPING = {
    "curiosity": "Curious to dive deeper", "joy": "Happy", "neutral": "Neutral", "surprise": "Surprised",
    "disgust": "Disgusted", "sadness": "Sad", "fear": "Fearful", "anger": "Angry",
}  # fmt: skip

RUNS = {
    "zeroshot": [("float32", True, 256), ("bfloat16", False, 256), ("bfloat16", True, 256),
                 ("bfloat16", True, 1024), ("bfloat16", True, 4096)],
    "emotion": [("float32", True, 256), ("bfloat16", True, 256), ("bfloat16", True, 1024)],
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("messages_file", type=Path)
    parser.add_argument("--messages", type=int, default=4096)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--device", default="cuda", help="cpu only to try the script out")
    parser.add_argument("--only", choices=sorted(RUNS), help="one backend")
    args = parser.parse_args()
    texts = [line for line in args.messages_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    texts = (texts * (args.messages // max(1, len(texts)) + 1))[: args.messages]
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    result: dict = {"device": name, "torch": torch.__version__, "messages": len(texts)}
    with tempfile.TemporaryDirectory() as tmp:
        for backend, runs in RUNS.items():
            if args.only and backend != args.only:
                continue
            path = str(save_full_size(backend, Path(tmp) / backend, texts))
            for dtype_name, sdpa, batch in runs:
                dtype = getattr(torch, dtype_name)
                if backend == "zeroshot":
                    classifier = ZeroShotClassifier(
                        path, TEMPLATE, VERBS, device, dtype, batch_size=batch, sdpa=sdpa
                    )
                else:
                    classifier = EmotionClassifier(path, MAPPING, device, dtype, batch_size=batch, sdpa=sdpa)
                rate = messages_per_second(classifier.predict, texts)
                key = f"{backend} {dtype_name} {'sdpa' if sdpa else 'eager'} batch {batch}"
                result[key] = round(rate, 1)
                print(f"{key:45s} {rate:9.1f} msg/s", flush=True)
                tokens = tokens_per_message(classifier.tokenizer, texts)
                del classifier
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            result[f"{backend} tokens per message"] = round(tokens, 1)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
