"""Tiny randomly-initialised models of the real architectures, saved with a real tokenizer.

They are loaded by the worker through exactly the code path that loads facebook/bart-large-mnli or
SamLowe/roberta-base-go_emotions from the hub: `from_pretrained` on a directory.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    BartConfig,
    BartForSequenceClassification,
    PreTrainedTokenizerFast,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from chatlens.bench.speed import GO_EMOTIONS, bpe_tokenizer
from chatlens.cli.demo import EXAMPLE_FILE

__all__ = ["GO_EMOTIONS", "save_tiny_bart_mnli", "save_tiny_roberta_go_emotions"]


def byte_level_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE like BART's and RoBERTa's, trained on our example messages (vocab 600)."""
    corpus = [*EXAMPLE_FILE.read_text(encoding="utf-8").splitlines(), "The speaker of this message feels"]
    return bpe_tokenizer(corpus, vocab_size=600, max_length=96)


def tiny_bart_config(vocab_size: int, positions: int, **extra: object) -> BartConfig:
    """BART's shape at its smallest, with bart-large's special-token ids."""
    return BartConfig(
        vocab_size=vocab_size,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=positions,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        decoder_start_token_id=2,
        **extra,
    )


def save_tiny_bart_mnli(directory: Path, id2label: dict[int, str]) -> Path:
    torch.manual_seed(0)
    tokenizer = byte_level_tokenizer()
    config = tiny_bart_config(
        len(tokenizer), 128, id2label=id2label, label2id={v: k for k, v in id2label.items()}
    )
    BartForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_tiny_roberta_go_emotions(directory: Path) -> Path:
    torch.manual_seed(0)
    tokenizer = byte_level_tokenizer()
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=130,  # RoBERTa's positions start after the padding index
        id2label=dict(enumerate(GO_EMOTIONS)),
        label2id={name: i for i, name in enumerate(GO_EMOTIONS)},
        problem_type="multi_label_classification",
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    RobertaForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
