"""`chatlens train head|adapt|finetune`: each sub-command has only its own options, with the trainer's
defaults, and a bad file is one line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import typer
from typer.core import TyperCommand, TyperGroup
from typer.testing import CliRunner

from chatlens.cli.app import app
from chatlens.training.adapt import AdaptOptions
from chatlens.training.cli import train_app
from chatlens.training.finetune import FineTuneOptions
from chatlens.training.head import TrainOptions

runner = CliRunner()
COMMON = {"train_files", "out_dir", "epochs", "class_weight_power", "val_frac", "seed", "threads"}
OWN = {
    "head": {"hidden_dim", "tune_adjustment", "encoder", "cap_per_class", "cache_dir", "predictions"},
    "adapt": {"encoder", "rank", "lr", "batch_size", "max_length", "cap_per_class", "limit", "predictions"},
    "finetune": {"base", "lr", "batch_size", "max_length", "limit", "register", "promote"},
}
OPTIONS = {"head": TrainOptions, "adapt": AdaptOptions, "finetune": FineTuneOptions}


def commands() -> dict[str, TyperCommand]:
    group = typer.main.get_command(train_app)
    assert isinstance(group, TyperGroup)
    return dict(group.commands)  # type: ignore[arg-type]


def test_each_mode_has_only_its_own_options() -> None:
    trainers = {name: c for name, c in commands().items() if name != "split-valid"}  # not a trainer
    assert {name: {p.name for p in c.params} for name, c in trainers.items()} == {
        name: COMMON | own for name, own in OWN.items()
    }


@pytest.mark.parametrize("mode", sorted(OWN))
def test_the_command_line_defaults_are_the_trainers(mode: str) -> None:
    fields = {
        f.name: f.default for f in dataclasses.fields(OPTIONS[mode]) if f.default != dataclasses.MISSING
    }
    shared = [p for p in commands()[mode].params if p.name in fields]
    assert len(shared) >= 6
    for param in shared:
        assert param.default == fields[param.name], f"train {mode} --{param.name}"
    for param in commands()[mode].params:
        assert param.help, f"train {mode} --{param.name} has no help"


def test_the_old_single_command_is_gone_with_a_usage_error() -> None:
    result = runner.invoke(app, ["train", "--adapt", "--train", "x.csv", "--out", "y"])
    assert result.exit_code == 2 and "No such option: --adapt" in result.output


@pytest.mark.parametrize("mode", sorted(OWN))
def test_a_missing_training_file_is_one_line(mode: str, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["train", mode, "--train", str(tmp_path / "nope.csv"), "--out", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {tmp_path / 'nope.csv'}: no such file; check the path"
