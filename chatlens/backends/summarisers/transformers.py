"""`HFSummariser`: conversation summaries from a transformers model, seq2seq or causal chat LLM.

An encoder-decoder (facebook/bart-large-cnn, the default) reads the conversation text as it is: it was
trained on articles, not instructions. A decoder-only model gets the instruction and the conversation as a
user message through its chat template. The first decodes by beam search; the second greedily, or by
sampling when CHATLENS_SUMMARY_TEMPERATURE is above 0. Either way a conversation longer than the model's
context is summarised map-reduce style (`worker.summariser.map_reduce`): never cut, never refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
)

from chatlens.backends.encoder import load_pretrained
from chatlens.backends.hf import model_version, resolve_device, resolve_dtype
from chatlens.backends.summariser import SummaryText, configured_model, map_reduce, prompt_overhead
from chatlens.core.errors import ChatlensError
from chatlens.core.settings import Settings

DEFAULT_MODEL = "facebook/bart-large-cnn"
NUM_BEAMS = 4
# Tokens a text can gain when it is tokenised inside the prompt rather than alone (merges at its edges).
MARGIN = 8
# tokenizer.model_max_length is 1e30 when a tokenizer does not know its model's limit.
_SANE_LENGTH = 10_000_000


def context_length(config: PretrainedConfig, tokenizer: object) -> int | None:
    """Positions the model has: the config's (under whichever name it uses), else the tokenizer's."""
    text = config.get_text_config(decoder=True)
    for name in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = getattr(text, name, None)
        if isinstance(value, int) and value > 0:
            return value
    length = getattr(tokenizer, "model_max_length", None)
    return length if isinstance(length, int) and 0 < length < _SANE_LENGTH else None


class HFSummariser:
    backend = "transformers"

    def __init__(
        self,
        source: str = DEFAULT_MODEL,
        device: str = "auto",
        dtype: str = "auto",
        max_new_tokens: int = 160,
        temperature: float = 0.0,
        context_tokens: int | None = None,
        sdpa: bool = True,
    ) -> None:
        self.device = resolve_device(device)
        config = load_pretrained(source, AutoConfig)
        self.tokenizer = load_pretrained(source, AutoTokenizer)
        self.seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        if not self.seq2seq and getattr(self.tokenizer, "chat_template", None) is None:
            raise ChatlensError(
                f"model {source!r} is a causal LM without a chat template; "
                "use an instruction-tuned chat model or an encoder-decoder summariser such as bart-large-cnn"
            )
        self.temperature = temperature
        self.positions = context_length(config, self.tokenizer)
        if self.positions is None and context_tokens is None:
            raise ChatlensError(
                f"model {source!r} does not say how long its context is; set CHATLENS_SUMMARY_CONTEXT_TOKENS"
            )
        self.max_new_tokens = max_new_tokens
        if self.seq2seq and self.positions:
            # The decoder has the same positions: its start token and the summary must fit in them.
            self.max_new_tokens = min(max_new_tokens, self.positions - 1)
        self.budget = self._budget(context_tokens)
        if self.budget < 32:
            raise ChatlensError(
                f"model {source!r} leaves {self.budget} tokens of conversation per call (context "
                f"{self.positions or context_tokens}, summary {self.max_new_tokens}); "
                "lower CHATLENS_SUMMARY_MAX_NEW_TOKENS or use a model with a longer context"
            )
        # Weights last: a refusal above costs no load.
        loader = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
        self.model = (
            _load_model(source, loader, resolve_dtype(dtype, self.device), sdpa).to(self.device).eval()
        )
        self.model_id = model_version(source, self.model)
        # The checkpoint's own length limits (bart-large-cnn: 56..142) would override ours with a warning.
        self.model.generation_config.min_length = None
        self.model.generation_config.max_length = None

    def _budget(self, context_tokens: int | None) -> int:
        """Tokens of conversation text one call may read."""
        # An explicit budget may lower the model's context, never raise it: positions past the end are an
        # index error in learned position embeddings (BART, GPT-2).
        if self.seq2seq:
            limits = [self.positions, context_tokens]
            overhead = self.tokenizer.num_special_tokens_to_add()
        else:
            # context_tokens bounds the prompt; the model's positions hold the prompt and the reply.
            limits = [self.positions and self.positions - self.max_new_tokens, context_tokens]
            overhead = prompt_overhead(self._prompt) + MARGIN
        return min(x for x in limits if x is not None) - overhead

    @classmethod
    def from_settings(cls, settings: Settings) -> HFSummariser:
        return cls(
            configured_model(settings, cls.backend) or DEFAULT_MODEL,
            device=settings.device,
            dtype=settings.dtype,
            max_new_tokens=settings.summary_max_new_tokens,
            temperature=settings.summary_temperature,
            context_tokens=settings.summary_context_tokens,
            sdpa=settings.sdpa,
        )

    def count(self, text: str) -> int:
        return len(self._ids(text))

    def summarise(self, turns: Sequence[str]) -> SummaryText:
        return map_reduce(turns, self.count, self.budget, self._generate)

    def _ids(self, text: str) -> list[int]:
        # Chat text is user input: "</s>" or "<|eot_id|>" typed in a message is text, not a control token.
        # verbose=False: counting a text longer than the model's context is how chunking starts, not an error.
        ids = self.tokenizer(text, add_special_tokens=False, split_special_tokens=True, verbose=False)
        return list(ids["input_ids"])

    def _prompt(self, instruction: str, text: str) -> list[int]:
        message = {"role": "user", "content": f"{instruction}\n\n{text}"}
        encoded = self.tokenizer.apply_chat_template(
            [message], add_generation_prompt=True, sanitize_control_tokens=True
        )
        return list(encoded["input_ids"])

    @torch.inference_mode()
    def _generate(self, instruction: str, text: str) -> tuple[str, int, int]:
        if self.seq2seq:
            ids = self.tokenizer(text, split_special_tokens=True)["input_ids"]
            options: dict[str, object] = {
                "num_beams": NUM_BEAMS,
                "do_sample": False,
                # About bart-large-cnn's own ratio (56 of 142), but at most a quarter of a short input.
                "min_new_tokens": min(self.max_new_tokens // 3, len(ids) // 4),
                "no_repeat_ngram_size": 3,
            }
        else:
            ids = self._prompt(instruction, text)
            sample = self.temperature > 0
            options = {"do_sample": sample, **({"temperature": self.temperature} if sample else {})}
        input_ids = torch.tensor([ids], device=self.device)
        max_new = self.max_new_tokens
        if self.positions and not self.seq2seq:
            max_new = min(max_new, self.positions - len(ids))
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max(1, max_new),
            pad_token_id=self._pad_id(),
            **options,
        )[0]
        # A decoder-only model returns the prompt too; an encoder-decoder its decoder start token.
        new = output[len(ids) :] if not self.seq2seq else output[1:]
        summary = self.tokenizer.decode(new, skip_special_tokens=True)
        return " ".join(summary.split()), len(ids), len(new)

    def _pad_id(self) -> int:
        pad = self.model.generation_config.pad_token_id
        if pad is None:
            pad = self.tokenizer.pad_token_id
        if pad is None:
            eos = self.model.generation_config.eos_token_id
            pad = eos[0] if isinstance(eos, list) else eos
        return int(pad if pad is not None else 0)


def _load_model(source: str, loader: type, dtype: torch.dtype, sdpa: bool) -> PreTrainedModel:
    try:
        return load_pretrained(source, loader, attn_implementation="sdpa" if sdpa else "eager", dtype=dtype)
    except ValueError:
        # An architecture without an sdpa kernel: fall back rather than refuse.
        return load_pretrained(source, loader, attn_implementation="eager", dtype=dtype)
