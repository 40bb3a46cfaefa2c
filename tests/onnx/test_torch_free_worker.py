"""A worker on a host without torch: `produce` then `chatlens worker --burst` with torch and transformers
made unimportable, serving the default classifier and the extractive summaries from ONNX exports."""

from __future__ import annotations

from pathlib import Path

import redis

from chatlens.cli.demo import EXAMPLE_FILE
from chatlens.core.run_reader import RunReader
from tests.fixtures.onnx_default import TinyDefault
from tests.helpers import run_chatlens, subprocess_env

# Imported first by every Python process started with this directory on PYTHONPATH.
BLOCKER = '''
import sys

BLOCKED = {"torch", "transformers"}


class NoTorch:
    """A host without torch: importing it (or transformers, which needs it) fails as if not installed."""

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None


sys.meta_path.insert(0, NoTorch())
'''


def torch_blocked_env(tiny_default: TinyDefault, redis_url: str, tmp_path: Path) -> dict[str, str]:
    """The tiny default's environment with a sitecustomize on the path that makes torch unimportable."""
    blocker = tmp_path / "no-torch"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCKER)
    env = subprocess_env(CHATLENS_REDIS_URL=redis_url, **tiny_default.env())
    env["PYTHONPATH"] = f"{blocker}:{env['PYTHONPATH']}"
    return env


def test_a_worker_without_torch_classifies_and_summarises_everything(
    tiny_default: TinyDefault, redis_url: str, tmp_path: Path
) -> None:
    env = torch_blocked_env(tiny_default, redis_url, tmp_path)
    blocked = run_chatlens("models", "export", "default", env=env)
    assert blocked.returncode != 0 and "blocked by the test" in blocked.stderr  # the blocker works

    produced = run_chatlens("produce", str(EXAMPLE_FILE), "--run", "slim", "--batch-size", "16", env=env)
    assert produced.returncode == 0, produced.stderr
    worked = run_chatlens("worker", "--burst", "--threads", "1", env=env)
    assert worked.returncode == 0, worked.stderr[-3000:]
    assert "torch" not in worked.stderr  # no fallback warning: the exports served

    reader = RunReader(redis.Redis.from_url(redis_url), 3600)
    messages = reader.messages("slim")
    predictions = reader.predictions("slim", "default")
    assert len(messages) == 95 and set(predictions) == set(messages)
    assert {p.model_version.rsplit("+", 1)[1] for p in predictions.values()} == {"onnx-int8"}
    conversations = {m.conversation_id for m in messages.values()}
    summaries = reader.summaries("slim")
    assert set(summaries) == conversations and all(s.text for s in summaries.values())
    assert {s.model_id for s in summaries.values()} == {f"{tiny_default.encoder}+onnx-int8"}


def test_without_torch_or_an_export_the_worker_says_which_command_builds_it(
    tiny_default: TinyDefault, redis_url: str, tmp_path: Path
) -> None:
    env = torch_blocked_env(tiny_default, redis_url, tmp_path)
    env["CHATLENS_EXPORTS_DIR"] = str(tmp_path / "no-exports")
    worked = run_chatlens("worker", "--burst", "--queue", "classify-default", env=env)
    assert worked.returncode == 2
    (line,) = worked.stderr.strip().splitlines()
    assert "torch is not installed" in line and "chatlens models export default --int8" in line
