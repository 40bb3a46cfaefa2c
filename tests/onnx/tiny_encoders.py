"""Tiny randomly-initialised encoders of the served architectures (BERT as MiniLM, MPNet) and a random
head on their layer means: what an ONNX export is built and checked from, in seconds."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import BertConfig, BertModel

from chatlens.backends.encoder_source import Pooling
from chatlens.backends.head import HeadConfig
from chatlens.backends.head_module import ClassifierHead, save_head
from chatlens.core.labels import LABELS
from tests.backends.tiny_models import byte_level_tokenizer
from tests.backends.tiny_mpnet import save_tiny_mpnet

__all__ = ["save_tiny_bert", "save_tiny_head", "save_tiny_mpnet"]


def save_tiny_bert(directory: Path) -> Path:
    """all-MiniLM-L6-v2's architecture (BertModel) at its smallest."""
    torch.manual_seed(0)
    tokenizer = byte_level_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    BertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_tiny_head(directory: Path, encoder_dir: Path, hidden: int = 32, layers: int = 2) -> Path:
    """A random linear head on the layer means of a tiny encoder: (layers + 1) x hidden features."""
    torch.manual_seed(1)
    config = HeadConfig(
        labels=list(LABELS),
        input_dim=hidden * (layers + 1),
        pooling=Pooling.LAYER_MEANS,
        encoder=str(encoder_dir),
        max_length=64,
        logit_adjustment=[0.0] * len(LABELS),
    )
    head = ClassifierHead(config)
    # Wide logits: random features then pick labels decisively, so fp32 exports agree on every one.
    with torch.no_grad():
        head.layers[1].weight.mul_(50.0)
    save_head(head, directory)
    return directory
