"""`chatlens bench --runtimes`: every runtime of a classifier side by side on the same messages."""

from __future__ import annotations

import json
from pathlib import Path

from chatlens.cli.demo import EXAMPLE_FILE
from tests.fixtures.onnx_default import TinyDefault
from tests.helpers import run_chatlens, subprocess_env

RUNTIMES = ("torch", "onnx", "onnx-int8")


def test_the_runtimes_are_measured_side_by_side(tiny_default: TinyDefault, tmp_path: Path) -> None:
    out = tmp_path / "runtimes.json"
    args = ["--file", str(EXAMPLE_FILE), "--runtimes", ",".join(RUNTIMES), "--messages", "40"]
    done = run_chatlens(
        "bench", *args, "--repeat", "2", "--threads", "1", "--json", str(out),
        env=subprocess_env(**tiny_default.env()),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert (figures["messages"], figures["repeat"]) == (40, 2)
    runtimes = figures["classifiers"]["default"]["runtimes"]
    assert tuple(runtimes) == RUNTIMES
    for name, row in runtimes.items():
        assert (
            row["msg_per_s"] == max(row["all_rounds_msg_per_s"]) > 0 and len(row["all_rounds_msg_per_s"]) == 2
        )
        assert row["peak_rss_mb"] > 0 and 0 <= row["accuracy"] <= 1 and 0 <= row["macro_f1"] <= 1
        assert row["version"].endswith(f"+{name}")
    # Labels are compared with torch's; fp32 ONNX computes the same model.
    assert runtimes["torch"]["same_label_pct"] == runtimes["onnx"]["same_label_pct"] == 100.0
    assert runtimes["torch"]["over_torch"] == 1.0


def test_an_unknown_runtime_is_refused_in_one_line() -> None:
    done = run_chatlens(
        "bench", "--file", str(EXAMPLE_FILE), "--runtimes", "torch,tensorrt", env=subprocess_env()
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "tensorrt" in line and "onnx-int8" in line
