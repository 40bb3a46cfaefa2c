"""Throughput of the Hugging Face backends at full size, with random weights (speed does not depend on
weight values, and no checkpoint can be downloaded here). Used by `chatlens bench --backend` on CPU and
by scripts/research/gpu_bench.py on a GPU machine; kept free of the settings object so the GPU script
needs only torch and transformers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    BartConfig,
    BartForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    PreTrainedTokenizerFast,
    RobertaConfig,
    RobertaForSequenceClassification,
)

MNLI = {0: "contradiction", 1: "neutral", 2: "entailment"}  # facebook/bart-large-mnli's order
GO_EMOTIONS = [
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity", "desire",
    "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear", "gratitude", "grief",
    "joy", "love", "nervousness", "optimism", "pride", "realization", "relief", "remorse", "sadness",
    "surprise", "neutral",
]  # fmt: skip


def bpe_tokenizer(texts: list[str], vocab_size: int = 8000, max_length: int = 512) -> PreTrainedTokenizerFast:
    """A byte-level BPE (BART/RoBERTa's kind) trained on the messages: realistic token counts offline."""
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=max_length,
    )  # fmt: skip


def save_full_size(backend: str, directory: Path, texts: list[str]) -> Path:
    """bart-large-mnli's, roberta-base-go_emotions' or MiniLM's architecture, random weights, saved."""
    torch.manual_seed(0)
    tokenizer = bpe_tokenizer(texts)
    special = {"pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2}
    if backend == "zeroshot":
        # BartConfig's defaults are bart-large: d_model 1024, 12 + 12 layers, 16 heads, FFN 4096, vocab 50265.
        config = BartConfig(id2label=MNLI, label2id={v: k for k, v in MNLI.items()}, **special)
        model = BartForSequenceClassification(config)
    elif backend == "emotion":
        # RobertaConfig's defaults are roberta-base: hidden 768, 12 layers, vocab 50265.
        config = RobertaConfig(
            max_position_embeddings=514, type_vocab_size=1, id2label=dict(enumerate(GO_EMOTIONS)),
            label2id={n: i for i, n in enumerate(GO_EMOTIONS)}, problem_type="multi_label_classification",
            **special,
        )  # fmt: skip
        model = RobertaForSequenceClassification(config)
    elif backend == "minilm":
        config = BertConfig(
            hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536
        )
        model = BertForSequenceClassification(config)
    else:
        raise ValueError(f"unknown backend {backend!r}")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def messages_per_second(predict: Callable[[list[str]], object], texts: list[str], rounds: int = 2) -> float:
    """Best of `rounds` timed passes after a warm-up on the first batch."""
    predict(texts[:32])
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    best = 0.0
    for _ in range(rounds):
        started = time.perf_counter()
        predict(texts)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = max(best, len(texts) / (time.perf_counter() - started))
    return best


def tokens_per_message(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> float:
    return sum(len(ids) for ids in tokenizer(texts)["input_ids"]) / max(1, len(texts))
