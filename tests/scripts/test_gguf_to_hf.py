"""scripts/gguf_to_hf.py: a GGUF chat model becomes a directory both generative backends load."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# A real model, a subprocess or a real redis-server: the full suite only, not `make test-fast`.
pytestmark = pytest.mark.slow

pytest.importorskip("gguf")
pytest.importorskip("accelerate")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gguf_to_hf.py"


def convert(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the converted directory, the HF directory the GGUF file was written from)."""
    from tests.fixtures.tiny_models import save_tiny_gguf

    directory = tmp_path_factory.mktemp("gguf")
    gguf_file, hf_dir = save_tiny_gguf(directory)
    out = directory / "out"
    result = convert(str(gguf_file), str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"wrote {out}"
    return out, hf_dir


@pytest.mark.slow
def test_the_directory_holds_the_same_model_and_tokenizer(converted: tuple[Path, Path]) -> None:
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    out, original = converted
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config  # a plain float32 model, loadable anywhere
    assert config["rope_parameters"]["rope_theta"] == 100_000.0
    ids = torch.tensor([list(range(3, 40))])
    with torch.no_grad():
        expected = LlamaForCausalLM.from_pretrained(original).eval()(ids).logits
        got = LlamaForCausalLM.from_pretrained(out).eval()(ids).logits
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    before, after = AutoTokenizer.from_pretrained(original), AutoTokenizer.from_pretrained(out)
    # Every token keeps its id; transformers' GGUF reader may add a GPT-2 "<|endoftext|>" of its own.
    assert after.get_vocab().items() >= before.get_vocab().items()
    assert after.chat_template == before.chat_template
    assert after.convert_ids_to_tokens(config["eos_token_id"]) == "<|end|>"


@pytest.mark.slow
def test_both_generative_backends_load_it_and_agree(converted: tuple[Path, Path]) -> None:
    pytest.importorskip("mlx_lm")
    from chatlens.backends.summarisers.mlx import MLXSummariser, check_mlx_platform
    from chatlens.backends.summarisers.transformers import HFSummariser
    from tests.fixtures.tiny_models import example_messages

    out, _ = converted
    check_mlx_platform(allow_cpu=True)
    turns = example_messages()[:3]
    on_torch = HFSummariser(str(out), max_new_tokens=12).summarise(turns)
    on_mlx = MLXSummariser(str(out), max_new_tokens=12).summarise(turns)
    assert on_torch.text and on_mlx.text == on_torch.text


def test_a_missing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = convert(str(tmp_path / "nope.gguf"), str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope.gguf'} is not a file"]
    assert not (tmp_path / "out").exists()


def test_a_file_that_is_not_gguf_is_one_line_exit_2_and_nothing_written(tmp_path: Path) -> None:
    bad = tmp_path / "model.gguf"
    bad.write_text("not a model\n", encoding="utf-8")
    result = convert(str(bad), str(tmp_path / "out"))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {bad} could not be converted:") and "GGUF" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.gguf"]  # no out, no staging left behind


def test_an_output_directory_with_files_is_refused(tmp_path: Path) -> None:
    gguf_file = tmp_path / "model.gguf"
    gguf_file.write_bytes(b"GGUF")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "config.json").write_text("{}", encoding="utf-8")
    result = convert(str(gguf_file), str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'out'} already holds files: remove it or name a new directory"
    ]
    assert (tmp_path / "out" / "config.json").read_text(encoding="utf-8") == "{}"
