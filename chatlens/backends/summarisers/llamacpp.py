"""`LlamaCppSummariser`: conversation summaries from any GGUF chat model on llama.cpp (xllamacpp), on CPU.

The model loads once per process into xllamacpp's embedded llama.cpp server. Tokenising and applying the
chat template go through that server's own endpoints (its loopback HTTP port, locked with a random API
key), so the chunk budget of map-reduce (`GenerativeSummariser`) is counted with the model's own
tokenizer. The prompt is built as token ids: the template's text around the user message is tokenised
with control tokens, the user message (instruction and conversation) without, so that "<|im_end|>" typed
in a chat stays text and cannot end the turn or open a new one.

The default model is the catalog's `qwen2.5-coder-1.5b-instruct` (Q4_K_M GGUF, `chatlens models fetch`);
CHATLENS_SUMMARY_MODEL takes another catalog name or a path to a .gguf file.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from chatlens.backends.catalog import resolve
from chatlens.backends.summariser import configured_model
from chatlens.backends.summarisers.generative import GenerativeSummariser
from chatlens.core.errors import ChatlensError
from chatlens.core.settings import Settings

DEFAULT_LLAMACPP_MODEL = "qwen2.5-coder-1.5b-instruct"
# Without CHATLENS_SUMMARY_CONTEXT_TOKENS the KV cache is sized for this many input tokens rather than the
# model's whole trained context (32k for Qwen2.5): a conversation longer than that is map-reduced, which on
# a CPU costs about what one long prompt would, and the cache stays ~120 MB instead of ~1 GB.
DEFAULT_CONTEXT_TOKENS = 4096
_SENTINEL = "\x00chatlens-message\x00"
_HTTP_TIMEOUT_S = 120.0


class LlamaCppSummariser(GenerativeSummariser):
    backend = "llamacpp"

    def __init__(
        self,
        path: str | Path,
        max_new_tokens: int = 160,
        temperature: float = 0.0,
        context_tokens: int | None = None,
        threads: int = 1,
        seed: int = 0,
        model_id: str | None = None,
    ) -> None:
        import xllamacpp

        gguf = Path(path).expanduser()
        if not gguf.is_file():
            raise ChatlensError(
                f"llama.cpp model {str(path)!r} is not a file: set CHATLENS_SUMMARY_MODEL to a .gguf path or "
                f"a catalog name (`chatlens models list`)"
            )
        self.model_id = model_id or str(gguf)
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.seed = seed
        inputs = context_tokens or DEFAULT_CONTEXT_TOKENS
        params = xllamacpp.CommonParams()
        params.model.path = str(gguf)
        params.n_ctx = inputs + max_new_tokens
        params.n_parallel = 1  # one conversation at a time: the worker's jobs are sequential
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.warmup = False
        params.verbosity = 0
        params.ui = False
        params.endpoint_slots = False
        # The embedded server listens on 127.0.0.1; a random key keeps other local users off it.
        self._key = secrets.token_hex(16)
        params.api_keys = [self._key]
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:  # xllamacpp raises a bare RuntimeError (or ValueError) on a bad file
            why = " ".join(str(exc).split())[:200]
            raise ChatlensError(
                f"llama.cpp model {self.model_id!r} could not be loaded ({why}): is it a GGUF file?"
            ) from None
        self._url = str(self._server.listening_address)
        meta = self._get("/v1/models")["data"][0].get("meta", {})
        # The KV cache's size, within the positions the model was trained on.
        self.context = min(params.n_ctx, int(meta.get("n_ctx_train") or params.n_ctx))
        self._prefix, self._suffix = self._template()
        self._bos = self._post("/tokenize", {"content": "", "add_special": True})["tokens"]
        self._set_budget(self.context, context_tokens)
        # Cumulative llama.cpp timings (prompt_n, prompt_ms, predicted_n, predicted_ms): the speed figures.
        self.timings: dict[str, float] = {
            "prompt_n": 0,
            "prompt_ms": 0.0,
            "predicted_n": 0,
            "predicted_ms": 0.0,
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> LlamaCppSummariser:
        source = configured_model(settings, cls.backend) or DEFAULT_LLAMACPP_MODEL
        return cls(
            resolve(source, settings.models_dir),
            max_new_tokens=settings.summary_max_new_tokens,
            temperature=settings.summary_temperature,
            context_tokens=settings.summary_context_tokens,
            threads=settings.summary_threads,
            model_id=source,
        )

    # --- the embedded server's endpoints ----------------------------------------------------------------

    def _request(self, path: str, body: dict[str, Any] | None) -> Any:
        data = None if body is None else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            self._url + path,
            data=data,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as response:
                return json.loads(response.read())
        except (urllib.error.URLError, OSError) as exc:
            raise RuntimeError(f"llama.cpp server {path}: {exc}") from exc

    def _get(self, path: str) -> Any:
        return self._request(path, None)

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        return self._request(path, body)

    def _tokens(self, text: str, control: bool) -> list[int]:
        body = {"content": text, "add_special": False, "parse_special": control}
        return list(self._post("/tokenize", body)["tokens"])

    def _template(self) -> tuple[str, str]:
        """The chat template's text before and after one user message (with a generation prompt)."""
        # One user message: every chat template accepts it, while some (Mistral, Gemma) reject a system one.
        rendered = self._post("/apply-template", {"messages": [{"role": "user", "content": _SENTINEL}]})
        prompt = str(rendered["prompt"])
        if prompt.count(_SENTINEL) != 1:
            raise ChatlensError(
                f"llama.cpp model {self.model_id!r}: its chat template does not place the user message "
                "once in the prompt; use an instruction-tuned (chat) GGUF"
            )
        prefix, suffix = prompt.split(_SENTINEL)
        return prefix, suffix

    # --- tokenisation, the chat template and generation for GenerativeSummariser -------------------------

    def _text_ids(self, text: str) -> list[int]:
        return self._tokens(text, control=False)

    def _chat_ids(self, message: str) -> list[int]:
        head = self._tokens(self._prefix, control=True)
        if self._bos and head[: len(self._bos)] != self._bos:
            head = [*self._bos, *head]  # the model wants a BOS its template does not write
        return [*head, *self._text_ids(message), *self._tokens(self._suffix, control=True)]

    def _complete(self, prompt: list[int], max_new_tokens: int) -> tuple[str, int]:
        request: dict[str, Any] = {
            "prompt": prompt,
            "max_tokens": max_new_tokens,
            "temperature": self.temperature,
            "seed": self.seed,
            # The template's head and the instruction repeat from one conversation to the next: their KV
            # cache is reused.
            "cache_prompt": True,
        }
        if self.temperature == 0:
            request["top_k"] = 1  # greedy: the arg-max token, no sampler chain in between
        response = self._server.handle_completions(request)
        if not isinstance(response, dict) or "choices" not in response:
            raise RuntimeError(f"llama.cpp completion failed: {str(response)[:300]}")
        timings = response.get("timings", {})
        for name in self.timings:
            self.timings[name] += float(timings.get(name, 0))
        written = int(response.get("usage", {}).get("completion_tokens", 0))
        return str(response["choices"][0]["text"]), written
