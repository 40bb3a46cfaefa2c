"""Summary jobs through each backend's queue on a real redis-server: produce -> worker process -> Redis.

The generative backends run tiny random models (BART for transformers, a Llama built with mlx-lm's own
classes for mlx on its CPU backend), loaded through the same paths as the hub models.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from chatlens.cli.demo import EXAMPLE_FILE
from chatlens.core.store import RunStore
from tests.fixtures.tiny_models import save_tiny_bart_cnn, save_tiny_mlx_llama
from tests.helpers import run_chatlens, subprocess_env

pytestmark = pytest.mark.slow

BACKENDS: dict[str, tuple[Callable[[Path], Path] | None, dict[str, str]]] = {
    "extractive": (None, {}),
    "transformers": (save_tiny_bart_cnn, {"CHATLENS_SUMMARY_MAX_NEW_TOKENS": "16", "CHATLENS_DEVICE": "cpu"}),
    "mlx": (
        save_tiny_mlx_llama,
        {"CHATLENS_SUMMARY_ALLOW_MLX_CPU": "1", "CHATLENS_SUMMARY_MAX_NEW_TOKENS": "16"},
    ),
}


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_summaries_flow_through_the_backend_queue(redis_url: str, tmp_path: Path, backend: str) -> None:
    build, extra = BACKENDS[backend]
    env = subprocess_env(
        CHATLENS_REDIS_URL=redis_url, CHATLENS_SUMMARY_BACKEND=backend, HF_HUB_OFFLINE="1", **extra
    )
    if build is not None:
        env["CHATLENS_SUMMARY_MODEL"] = str(build(tmp_path / "model"))

    produced = run_chatlens("produce", str(EXAMPLE_FILE), "--run", "sum", env=env)
    assert produced.returncode == 0, produced.stderr
    assert "conversations-to-summarise 12" in produced.stdout
    worked = run_chatlens("worker", "--queue", f"summarise-{backend}", "--burst", "--threads", "1", env=env)
    assert worked.returncode == 0, worked.stderr

    store = RunStore(redis.Redis.from_url(redis_url), 3600)
    summaries = store.summaries("sum")
    assert len(summaries) == 12 and not store.summary_errors("sum")
    for summary in summaries.values():
        assert summary.backend == backend and summary.calls >= 1 and summary.turns >= 1
        assert summary.input_tokens > 0 and summary.latency_ms > 0
        if build is not None:
            assert summary.model_id.startswith(env["CHATLENS_SUMMARY_MODEL"])
            assert 0 < summary.output_tokens <= 16 * summary.calls
    # Random tiny generators write gibberish, possibly empty after decoding; the extractive one cannot.
    if backend == "extractive":
        assert all(s.text for s in summaries.values())


def test_an_mlx_worker_refuses_to_start_off_apple_silicon(redis_url: str, tmp_path: Path) -> None:
    env = subprocess_env(
        CHATLENS_REDIS_URL=redis_url, CHATLENS_SUMMARY_MODEL=str(save_tiny_mlx_llama(tmp_path))
    )
    proc = run_chatlens("worker", "--queue", "summarise-mlx", "--burst", env=env, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Apple-silicon" in lines[0] and "CHATLENS_SUMMARY_ALLOW_MLX_CPU" in lines[0]
