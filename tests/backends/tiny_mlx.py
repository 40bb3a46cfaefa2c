"""A tiny randomly-initialised Llama saved as an mlx-lm model directory, with a Llama-3-style tokenizer.

Built with mlx-lm's own model classes and loaded back through `mlx_lm.load(directory)`: the code path a
hub id takes once its snapshot is in the cache.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from chatlens.backends.summarisers.generative import INSTRUCTIONS
from chatlens.cli.demo import EXAMPLE_FILE

CONTEXT = 256  # max_position_embeddings: small, so that a long conversation must be chunked
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
# Meta-Llama-3-8B-Instruct's template.
LLAMA3_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)


def example_messages() -> list[str]:
    with EXAMPLE_FILE.open(encoding="utf-8", newline="") as f:
        return [row["message"] for row in csv.DictReader(f)]


def llama3_tokenizer(vocab_size: int = 1000) -> PreTrainedTokenizerFast:
    """A byte-level BPE like Llama 3's (no prefix space, ByteLevel decoder), trained on our examples."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator([*example_messages(), *INSTRUCTIONS], trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        model_max_length=CONTEXT,
    )
    fast.chat_template = LLAMA3_TEMPLATE
    return fast


def save_tiny_llama(directory: Path, seed: int = 0) -> Path:
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models.llama import Model, ModelArgs

    tokenizer = llama3_tokenizer()
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,  # grouped-query attention, as in Llama 3
        "rms_norm_eps": 1e-5,
        "vocab_size": len(tokenizer),
        "max_position_embeddings": CONTEXT,
        "rope_theta": 500000.0,
        "tie_word_embeddings": False,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    mx.random.seed(seed)
    model = Model(ModelArgs.from_dict(config))
    directory.mkdir(parents=True, exist_ok=True)
    mx.save_safetensors(str(directory / "model.safetensors"), dict(tree_flatten(model.parameters())))
    (directory / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    tokenizer.save_pretrained(directory)
    return directory
