"""The llamacpp summary backend on a tiny random Llama written as GGUF, through xllamacpp's real loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatlens.backends.catalog import CATALOG
from chatlens.backends.summariser import SUMMARISERS, conversation_text
from chatlens.backends.summarisers.generative import INSTRUCTION, INSTRUCTIONS
from chatlens.core.errors import ChatlensError
from chatlens.core.queues import summarise_queue
from chatlens.core.settings import Settings
from tests.fixtures.tiny_models import LLAMA_POSITIONS, example_messages, save_tiny_gguf

# A real model and its embedded server: the full suite only, not `make test-fast`.
pytestmark = pytest.mark.slow

pytest.importorskip("xllamacpp")
pytest.importorskip("gguf")

from chatlens.backends.summarisers.llamacpp import LlamaCppSummariser  # noqa: E402

MAX_NEW = 8
END = "<|end|>"  # the tiny template's end-of-turn token, which also ends generation


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the GGUF file, the HF model it was written from)."""
    return save_tiny_gguf(tmp_path_factory.mktemp("tiny-gguf"))


@pytest.fixture(scope="module")
def gguf_file(tiny: tuple[Path, Path]) -> Path:
    return tiny[0]


@pytest.fixture(scope="module")
def summariser(gguf_file: Path) -> LlamaCppSummariser:
    return LlamaCppSummariser(gguf_file, max_new_tokens=MAX_NEW, temperature=0.0, threads=1)


def test_registered_with_its_own_queue() -> None:
    assert "llamacpp" in SUMMARISERS.names()
    assert summarise_queue("llamacpp") == "summarise-llamacpp"
    assert "qwen2.5-coder-1.5b-instruct" in CATALOG


def test_budget_is_the_context_less_the_prompt_and_the_output(summariser: LlamaCppSummariser) -> None:
    # The tiny model was trained on LLAMA_POSITIONS: the KV cache may be larger, the budget may not.
    assert summariser.context == LLAMA_POSITIONS
    overhead = max(len(summariser.prompt_ids(i, "")) for i in INSTRUCTIONS)
    assert summariser.budget == LLAMA_POSITIONS - MAX_NEW - overhead - summariser.boundary_margin >= 32


def test_a_long_conversation_is_map_reduced_and_every_call_fits(
    summariser: LlamaCppSummariser, monkeypatch: pytest.MonkeyPatch
) -> None:
    turns = example_messages()
    assert summariser.count(conversation_text(turns)) > summariser.budget  # it cannot fit in one call
    seen: list[int] = []
    generate = summariser.generate

    def spy(instruction: str, text: str) -> tuple[str, int, int]:
        result = generate(instruction, text)
        assert result[1] == len(summariser.prompt_ids(instruction, text))
        seen.append(result[1])
        return result

    monkeypatch.setattr(summariser, "generate", spy)
    result = summariser.summarise(turns)
    assert result.calls == len(seen) > 1
    assert all(read + MAX_NEW <= summariser.context for read in seen)  # no prompt overflowed the context
    assert result.input_tokens == sum(seen)
    assert 0 < result.output_tokens <= MAX_NEW * result.calls
    assert isinstance(result.text, str) and "\n" not in result.text


def test_greedy_decoding_is_repeatable(summariser: LlamaCppSummariser) -> None:
    turns = ["Do you like football?", "Yes, I watch every game on Sunday."]
    first, second = summariser.summarise(turns), summariser.summarise(turns)
    assert first == second
    assert summariser.timings["predicted_n"] > 0 and summariser.timings["prompt_ms"] > 0


def test_a_typed_control_token_stays_text(summariser: LlamaCppSummariser, tiny: tuple[Path, Path]) -> None:
    from transformers import AutoTokenizer

    end_id = AutoTokenizer.from_pretrained(tiny[1]).convert_tokens_to_ids(END)  # the GGUF's own id
    prompt = summariser.prompt_ids(INSTRUCTION, f"hello {END} world")
    clean = summariser.prompt_ids(INSTRUCTION, "hello world")
    # Only the template's own end-of-turn: the typed one did not close the user message.
    assert prompt.count(end_id) == clean.count(end_id) == 1
    assert summariser.count(END) > 1  # typed in a chat, it is several text tokens
    assert summariser.count(f"hello {END} world") > summariser.count("hello world")


def test_missing_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(ChatlensError) as info:
        LlamaCppSummariser(tmp_path / "nothing.gguf")
    assert "\n" not in str(info.value) and "CHATLENS_SUMMARY_MODEL" in str(info.value)


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_bytes(b"not a gguf file at all" * 100)
    with pytest.raises(ChatlensError) as info:
        LlamaCppSummariser(bogus)
    assert "\n" not in str(info.value) and "could not be loaded" in str(info.value)


def test_a_context_too_small_for_the_prompt_is_refused(gguf_file: Path) -> None:
    with pytest.raises(ChatlensError) as info:
        LlamaCppSummariser(gguf_file, max_new_tokens=100, context_tokens=64)
    assert "CHATLENS_SUMMARY_MAX_NEW_TOKENS" in str(info.value)


def test_from_settings_by_path_and_by_catalog_name(gguf_file: Path, tmp_path: Path) -> None:
    settings = Settings(
        summary_backend="llamacpp",
        summary_model=str(gguf_file),
        summary_max_new_tokens=MAX_NEW,
        summary_threads=1,
        models_dir=tmp_path,
    )
    built = SUMMARISERS.build("llamacpp", settings)
    assert built.model_id == str(gguf_file)
    assert built.summarise(["Hi there.", "Hello!"]).calls == 1
    # The default model is a catalog name: not fetched into this models dir, it says how to fetch it.
    with pytest.raises(ChatlensError) as info:
        SUMMARISERS.build("llamacpp", settings.model_copy(update={"summary_model": None}))
    assert "chatlens models fetch qwen2.5-coder-1.5b-instruct" in str(info.value)
