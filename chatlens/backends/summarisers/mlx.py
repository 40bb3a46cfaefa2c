"""`MLXSummariser`: conversation summaries from an instruction-tuned LLM (Llama 3 by default) on mlx-lm.

MLX is Apple's framework: in production this backend runs only on Apple silicon with Metal, so its queue
(`summarise-mlx`) is served by Mac workers. mlx also has a CPU backend, which the tests use behind an
explicit override.
"""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chatlens.backends.summariser import configured_model
from chatlens.backends.summarisers.generative import GenerativeSummariser
from chatlens.core.errors import ChatlensError
from chatlens.core.settings import Settings

DEFAULT_MLX_MODEL = "mlx-community/Meta-Llama-3-8B-Instruct-4bit"


def _rosetta() -> bool:
    """True when this (x86_64) process is translated by Rosetta 2 on an Apple-silicon Mac."""
    try:
        out = subprocess.run(
            ["sysctl", "-n", "sysctl.proc_translated"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.stdout.strip() == "1"


def _metal_available() -> bool:
    import mlx.core as mx

    return bool(mx.metal.is_available())


def check_mlx_platform(
    allow_cpu: bool,
    *,
    system: str | None = None,
    machine: str | None = None,
    translated: bool | None = None,
    metal: bool | None = None,
) -> None:
    """Refuse to run unless on native Apple silicon with Metal, or `allow_cpu` (mlx's CPU backend).

    The platform facts default to this process's; tests inject them."""
    try:
        import mlx.core as mx
    except ImportError as exc:
        raise ChatlensError(
            f"the mlx summary backend needs the mlx package, which cannot be imported here ({exc}); "
            "install it on an Apple-silicon host (pip install mlx mlx-lm)"
        ) from None
    system = platform.system() if system is None else system
    machine = platform.machine() if machine is None else machine
    if translated is None:
        # Under Rosetta, platform.machine() says x86_64 although the hardware is arm64.
        translated = system == "Darwin" and _rosetta()
    metal = _metal_available() if metal is None else metal
    native = system == "Darwin" and machine == "arm64" and not translated
    if native and metal:
        return
    if allow_cpu:
        if not metal:
            mx.set_default_device(mx.cpu)
        return
    found = f"{system} {machine}"
    if translated:
        found += " under Rosetta (an x86_64 Python on Apple silicon)"
    elif native:
        found += " without Metal"
    raise ChatlensError(
        f"the mlx summary backend found {found}: the summarise-mlx queue needs an Apple-silicon host "
        "(macOS, a native arm64 Python, Metal), or set CHATLENS_SUMMARY_ALLOW_MLX_CPU=1 to run on mlx's "
        "CPU backend"
    )


def _offline() -> bool:
    from huggingface_hub import constants

    # huggingface_hub reads HF_HUB_OFFLINE once, at import; the environment may have changed since.
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    return bool(constants.HF_HUB_OFFLINE) or flag in ("1", "true", "yes", "on")


def _not_found(source: str, why: str) -> ChatlensError:
    return ChatlensError(
        f"mlx model {source!r} {why}: give a local mlx-lm model directory in CHATLENS_SUMMARY_MODEL, or "
        "download it once into HF_HOME's cache on a machine with access and set HF_HUB_OFFLINE=1"
    )


def resolve_mlx_model(source: str) -> tuple[Path, str]:
    """(a local directory holding the model, the model id to record) for a local dir or a hub id."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path, source
    from huggingface_hub import snapshot_download
    from mlx_lm.utils import DEFAULT_ALLOW_PATTERNS, hf_repo_to_path

    try:
        snapshot = hf_repo_to_path(source)  # the cache only: never touches the network
    except ValueError:  # not a valid repo id (and no such directory)
        raise _not_found(source, "is neither a local directory nor a valid Hugging Face id") from None
    except OSError:
        if _offline():
            raise _not_found(source, "is not in the Hugging Face cache (HF_HUB_OFFLINE is set)") from None
        try:
            snapshot = snapshot_download(source, allow_patterns=DEFAULT_ALLOW_PATTERNS)
        except OSError as exc:
            why = " ".join(str(exc).split())[:200]
            raise _not_found(
                source, f"is not in the Hugging Face cache and could not be downloaded ({why})"
            ) from None
    # A cached snapshot's directory is named by its commit, so the id records exactly what was loaded.
    return Path(snapshot), f"{source}@{Path(snapshot).name}"


def _special_tokens(tokenizer: Any) -> list[str]:
    decoder = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    named = [str(t) for t in getattr(tokenizer, "all_special_tokens", [])]
    return sorted({*named, *(str(t) for t in decoder.values() if getattr(t, "special", False))}, key=len)


def strip_specials(text: str, specials: Sequence[str]) -> str:
    """`text` without trailing special tokens (e.g. an <|end_of_text|> that is not an EOS id) or spaces."""
    text = text.strip()
    changed = True
    while changed and text:
        changed = False
        for token in specials:
            if token and text.endswith(token):
                text = text[: -len(token)].rstrip()
                changed = True
    return text


def rope_overrides(config: dict[str, Any]) -> dict[str, Any]:
    """RoPE settings moved to where mlx-lm reads them, for a config.json written by transformers 5.

    transformers 5 saves `rope_theta` and `rope_scaling` inside `rope_parameters`. mlx-lm (0.32) still
    reads the old keys and, finding none, silently builds the model with its default base of 10,000: a
    model trained with another base (SmolLM2's 100,000, Llama 3's 500,000) then loads without error and
    writes nonsense."""
    params = config.get("rope_parameters")
    if not isinstance(params, dict):
        return {}
    overrides: dict[str, Any] = {}
    if "rope_theta" not in config and "rope_theta" in params:
        overrides["rope_theta"] = params["rope_theta"]
    if config.get("rope_scaling") is None and params.get("rope_type", "default") != "default":
        overrides["rope_scaling"] = {k: v for k, v in params.items() if k != "rope_theta"}
    return overrides


class MLXSummariser(GenerativeSummariser):
    backend = "mlx"

    def __init__(
        self,
        source: str | None = None,
        max_new_tokens: int = 160,
        temperature: float = 0.0,
        context_tokens: int | None = None,
    ) -> None:
        import mlx_lm
        from mlx_lm.sample_utils import make_sampler
        from mlx_lm.utils import load_config

        path, self.model_id = resolve_mlx_model(source or DEFAULT_MLX_MODEL)
        try:
            overrides = rope_overrides(load_config(path))
            self.model, self.tokenizer, config = mlx_lm.load(  # type: ignore[misc]  # a 3-tuple with return_config=True; mlx-lm's overloads miss it
                str(path), model_config=overrides, return_config=True
            )
        except (OSError, ValueError) as exc:
            why = " ".join(str(exc).split())[:200]
            raise ChatlensError(f"mlx model {self.model_id!r} could not be loaded: {why}") from None
        if not self.tokenizer.has_chat_template:
            raise ChatlensError(
                f"mlx model {self.model_id!r} has no chat template: use an instruction-tuned (chat) model"
            )
        self.max_new_tokens = max_new_tokens
        self.sampler = make_sampler(temp=temperature)
        self.specials = _special_tokens(self.tokenizer)
        positions = config.get("max_position_embeddings") or config.get("text_config", {}).get(
            "max_position_embeddings"
        )
        self._set_budget(None if positions is None else int(positions), context_tokens)

    @classmethod
    def from_settings(cls, settings: Settings) -> MLXSummariser:
        check_mlx_platform(settings.summary_allow_mlx_cpu)
        return cls(
            configured_model(settings, cls.backend),
            max_new_tokens=settings.summary_max_new_tokens,
            temperature=settings.summary_temperature,
            context_tokens=settings.summary_context_tokens,
        )

    # --- tokenisation, the chat template and generation for GenerativeSummariser -------------------------

    def _text_ids(self, text: str) -> list[int]:
        # verbose=False: counting a whole conversation is how chunking starts, not an overlong input.
        ids = self.tokenizer.encode(text, add_special_tokens=False, split_special_tokens=True, verbose=False)
        return list(ids)

    def _chat_ids(self, message: str) -> list[int]:
        messages = [{"role": "user", "content": message}]
        try:
            # Chat text is user input: "<|eot_id|>" typed in a message is text, not the end of the turn.
            ids = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, sanitize_control_tokens=True
            )
        except TypeError:
            # mlx-lm's own Python templates (DeepSeek-V3.2's) take no such option.
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        return list(ids)

    def _complete(self, prompt: list[int], max_new_tokens: int) -> tuple[str, int]:
        import mlx_lm

        pieces: list[str] = []
        written = 0
        # stream_generate rather than generate: the same loop, but its responses carry the token counts.
        for response in mlx_lm.stream_generate(
            self.model, self.tokenizer, prompt, max_tokens=max_new_tokens, sampler=self.sampler
        ):
            pieces.append(response.text)
            written = response.generation_tokens
        return strip_specials("".join(pieces), self.specials), written
