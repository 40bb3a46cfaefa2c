"""`chatlens eval-summaries --compare`: summaries written elsewhere scored beside the backends, and every two
systems compared conversation by conversation with a paired interval."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chatlens.cli.app import app
from eval.summary_metrics import paired_rouge_l
from tests.helpers import ROOT

REFERENCES = ROOT / "tests" / "data" / "reference_summaries.json"
runner = CliRunner()


def written(path: Path, summaries: dict[str, str]) -> Path:
    path.write_text(json.dumps([{"conversation_id": c, "summary": s} for c, s in summaries.items()]))
    return path


def references() -> list[dict]:
    return json.loads(REFERENCES.read_text(encoding="utf-8"))


def test_pairs_put_the_better_system_first_with_its_interval() -> None:
    targets = ["the cat sat on the mat", "a dog ran in the park", "rain fell all day long"]
    outputs = {
        "copy": targets,
        "half": ["the cat sat", "a dog ran", "rain fell"],
        "none": ["zebra", "xylophone", "quartz"],
    }
    pairs = paired_rouge_l(outputs, targets)
    assert [(p["first"], p["second"]) for p in pairs] == [
        ("copy", "half"),
        ("copy", "none"),
        ("half", "none"),
    ]
    copy_none = pairs[1]
    assert (copy_none["rougeL_difference"], copy_none["ci_low"], copy_none["ci_high"]) == (1.0, 1.0, 1.0)
    for pair in pairs:
        assert 0 < pair["ci_low"] <= pair["rougeL_difference"] <= pair["ci_high"]
    # Listed the other way round, the same pairs with the better one still first.
    again = paired_rouge_l(dict(reversed(outputs.items())), targets)
    assert {(p["first"], p["second"], p["rougeL_difference"]) for p in again} == {
        (p["first"], p["second"], p["rougeL_difference"]) for p in pairs
    }


@pytest.mark.parametrize(
    ("option", "fragment"),
    [
        ("bart", "--compare 'bart': write NAME=FILE"),
        ("=x.json", "write NAME=FILE"),
        ("extractive={file}", "'extractive' is a backend's name"),
        ("mine={missing}", "no such file"),
        ("mine={partial}", "no summary for conversation c02, c03, c04, c05, c06 and 6 more"),
    ],
)
def test_a_bad_compare_option_is_one_line_and_nothing_is_written(
    tmp_path: Path, option: str, fragment: str
) -> None:
    file = written(tmp_path / "all.json", {r["conversation_id"]: r["summary"] for r in references()})
    partial = written(tmp_path / "partial.json", {"c01": "one"})
    option = option.format(file=file, missing=tmp_path / "missing.json", partial=partial)
    out = tmp_path / "out"
    result = runner.invoke(app, ["eval-summaries", str(REFERENCES), "--out", str(out), "--compare", option])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert (result.exit_code, len(lines)) == (2, 1), result.output
    assert fragment in lines[0]
    assert not out.exists()


def test_the_same_name_twice_is_refused(tmp_path: Path) -> None:
    file = written(tmp_path / "a.json", {"c01": "x"})
    args = ["--compare", f"a={file}", "--compare", f"a={file}"]
    result = runner.invoke(app, ["eval-summaries", str(REFERENCES), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2 and "the name 'a' is given twice" in result.output


@pytest.mark.slow
def test_backends_and_compared_files_are_scored_and_paired(tmp_path: Path) -> None:
    refs = references()
    # The references themselves (ROUGE-L 1) and each conversation's first words: both extremes are known.
    perfect = written(tmp_path / "perfect.json", {r["conversation_id"]: r["summary"] for r in refs})
    opening = written(
        tmp_path / "opening.json", {r["conversation_id"]: " ".join(r["message"].split()[:8]) for r in refs}
    )
    out = tmp_path / "out"
    args = ["eval-summaries", str(REFERENCES), "--out", str(out), "-b", "extractive", "--no-mlflow"]
    result = runner.invoke(app, [*args, "--compare", f"perfect={perfect}", "--compare", f"opening={opening}"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["summaries"]) == {"extractive"}
    assert set(metrics["compared"]) == {"perfect", "opening"}
    assert metrics["compared"]["perfect"]["rougeL"] == 1.0
    assert metrics["compared"]["perfect"]["file"] == str(perfect)
    pairs = {(p["first"], p["second"]): p for p in metrics["paired"]}
    assert set(pairs) == {("perfect", "extractive"), ("perfect", "opening"), ("extractive", "opening")}
    gap = pairs[("perfect", "extractive")]
    assert gap["rougeL_difference"] == pytest.approx(
        1 - metrics["summaries"]["extractive"]["rougeL"], abs=1e-3
    )
    assert gap["ci_low"] > 0
    assert "perfect - extractive: ROUGE-L +" in result.output
    report = (out / "report.md").read_text()
    assert "| *perfect* (perfect.json) | 1.000 |" in report and "- extractive - opening: ROUGE-L +" in report
    record = json.loads((out / "summaries.jsonl").read_text().splitlines()[0])
    assert set(record) == {"conversation_id", "reference", "extractive", "perfect", "opening"}
    assert record["perfect"] == record["reference"]
