"""Tiny randomly-initialised generators of the real architectures, saved with a real tokenizer.

A BART summariser (facebook/bart-large-cnn's kind) and a Llama chat model (a chat template, a causal LM),
each with a context far smaller than the real ones, so that an ordinary conversation already overflows it
and the map-reduce path runs. The worker loads them with `from_pretrained` on a directory: the code path a
hub id takes.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    BartForConditionalGeneration,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from chatlens.backends.summarisers.generative import INSTRUCTIONS
from chatlens.bench.speed import bpe_tokenizer
from chatlens.cli.demo import EXAMPLE_FILE
from tests.backends.tiny_models import tiny_bart_config

BART_POSITIONS = 64
# Room for the shared instruction (about 70 of this tokenizer's tokens) and a short conversation.
LLAMA_POSITIONS = 160
CHAT_TOKENS = ["<|user|>", "<|assistant|>", "<|end|>"]
# Llama-3-like in shape: a BOS, one header per turn, an end-of-turn token that also ends generation.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'user' %}<|user|>{% else %}<|assistant|>{% endif %}\n{{ m['content'] }}<|end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def messages() -> list[str]:
    lines = EXAMPLE_FILE.read_text(encoding="utf-8").splitlines()[1:]
    return [line.split(",", 1)[1].rsplit(",", 1)[0].strip('"') for line in lines]


def generator_tokenizer(max_length: int) -> PreTrainedTokenizerFast:
    # Trained on the instructions too, so that they take few tokens of the tiny context.
    corpus = [*messages(), *INSTRUCTIONS]
    return bpe_tokenizer(corpus, vocab_size=600, max_length=max_length)


def save_tiny_bart_cnn(directory: Path) -> Path:
    torch.manual_seed(0)
    tokenizer = generator_tokenizer(BART_POSITIONS)
    config = tiny_bart_config(len(tokenizer), BART_POSITIONS, forced_bos_token_id=0)
    model = BartForConditionalGeneration(config)
    # bart-large-cnn ships length limits of its own; the worker must replace them with its settings.
    model.generation_config.min_length = 56
    model.generation_config.max_length = 142
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_tiny_llama_chat(directory: Path, chat_template: bool = True, rope_theta: float = 10_000.0) -> Path:
    torch.manual_seed(0)
    tokenizer = generator_tokenizer(LLAMA_POSITIONS)
    tokenizer.add_tokens(CHAT_TOKENS, special_tokens=True)
    if chat_template:
        tokenizer.chat_template = CHAT_TEMPLATE
    end = tokenizer.convert_tokens_to_ids("<|end|>")
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=LLAMA_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=end,
        pad_token_id=None,  # as in Llama 3: the worker must not need one
        tie_word_embeddings=False,  # tied, a random model only echoes its last input token
        rope_parameters={"rope_type": "default", "rope_theta": rope_theta},
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
