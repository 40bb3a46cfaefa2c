"""`HFSummariser`: conversation summaries from a transformers model, seq2seq or causal chat LLM.

An encoder-decoder (facebook/bart-large-cnn, the default) reads the conversation text as it is: it was
trained on articles, not instructions. A decoder-only model gets the instruction and the conversation as a
user message through its chat template. The first decodes by beam search; the second greedily, or by
sampling when CHATLENS_SUMMARY_TEMPERATURE is above 0. Either way a conversation longer than the model's
context is summarised map-reduce style (`GenerativeSummariser`): never cut, never refused.
"""

from __future__ import annotations

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
from chatlens.backends.summariser import configured_model
from chatlens.backends.summarisers.generative import GenerativeSummariser
from chatlens.core.errors import ChatlensError
from chatlens.core.settings import Settings

DEFAULT_MODEL = "facebook/bart-large-cnn"
NUM_BEAMS = 4
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


class HFSummariser(GenerativeSummariser):
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
        self.model_id = source  # until the weights say which revision they are
        positions = context_length(config, self.tokenizer)
        self.max_new_tokens = max_new_tokens
        if self.seq2seq and positions:
            # The decoder has the same positions: its start token and the summary must fit in them.
            self.max_new_tokens = min(max_new_tokens, positions - 1)
        # A seq2seq prompt is the text alone, tokenised as `count` does: no boundary to allow for. A chat
        # prompt's text can gain tokens from merges at its edges.
        self.boundary_margin = 0 if self.seq2seq else 8
        self._set_budget(positions, context_tokens)
        # Weights last: a refusal above costs no load.
        loader = AutoModelForSeq2SeqLM if self.seq2seq else AutoModelForCausalLM
        self.model = (
            _load_model(source, loader, resolve_dtype(dtype, self.device), sdpa).to(self.device).eval()
        )
        self.model_id = model_version(source, self.model)
        # The checkpoint's own length limits (bart-large-cnn: 56..142) would override ours with a warning.
        self.model.generation_config.min_length = None
        self.model.generation_config.max_length = None

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

    # --- tokenisation, the chat template and generation for GenerativeSummariser -------------------------

    def _reply_shares_positions(self) -> bool:
        return not self.seq2seq  # an encoder-decoder's reply has the decoder's positions

    def _text_ids(self, text: str) -> list[int]:
        # Chat text is user input: "</s>" or "<|eot_id|>" typed in a message is text, not a control token.
        # verbose=False: counting a text longer than the model's context is how chunking starts, not an error.
        ids = self.tokenizer(text, add_special_tokens=False, split_special_tokens=True, verbose=False)
        return list(ids["input_ids"])

    def prompt_ids(self, instruction: str, text: str) -> list[int]:
        if self.seq2seq:  # trained on articles, not instructions: it reads the conversation as it is
            return list(self.tokenizer(text, split_special_tokens=True)["input_ids"])
        return super().prompt_ids(instruction, text)

    def _chat_ids(self, message: str) -> list[int]:
        encoded = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], add_generation_prompt=True, sanitize_control_tokens=True
        )
        return list(encoded["input_ids"])

    @torch.inference_mode()
    def _complete(self, prompt: list[int], max_new_tokens: int) -> tuple[str, int]:
        options: dict[str, object]
        if self.seq2seq:
            options = {
                "num_beams": NUM_BEAMS,
                "do_sample": False,
                # About bart-large-cnn's own ratio (56 of 142), but at most a quarter of a short input.
                "min_new_tokens": min(self.max_new_tokens // 3, len(prompt) // 4),
                "no_repeat_ngram_size": 3,
            }
        else:
            sample = self.temperature > 0
            options = {"do_sample": sample, **({"temperature": self.temperature} if sample else {})}
        input_ids = torch.tensor([prompt], device=self.device)
        output = self.model.generate(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            pad_token_id=self._pad_id(),
            **options,
        )[0]
        # A decoder-only model returns the prompt too; an encoder-decoder its decoder start token.
        new = output[len(prompt) :] if not self.seq2seq else output[1:]
        return self.tokenizer.decode(new, skip_special_tokens=True), len(new)

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
