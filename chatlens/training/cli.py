"""`chatlens train` and `chatlens promote`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import TaskID

from chatlens.core.console import out, progress_bar, user_errors
from chatlens.core.errors import ChatlensError
from chatlens.core.settings import get_settings

if TYPE_CHECKING:  # torch and peft load only when the command runs
    from chatlens.training.adapt import AdaptOptions


@user_errors
def train(
    train_files: list[Path] = typer.Option(
        ..., "--train", help="labelled CSV, JSONL or Parquet file; repeat to train on several"
    ),
    out_dir: Path = typer.Option(
        ...,
        "--out",
        help="directory to write the model to (head.safetensors/head.json, or the fine-tuned model)",
    ),
    epochs: int | None = typer.Option(None, min=1, help="[default: 15]"),
    hidden_dim: int | None = typer.Option(None, min=0, help="0 = a linear head [default: 0]"),
    class_weight_power: float | None = typer.Option(
        None, min=0.0, max=1.0, help="loss weight ~ (1/class frequency)^power [default: 0.5]"
    ),
    tune_adjustment: bool = typer.Option(True, help="tune the logit adjustment's tau on validation"),
    val_frac: float | None = typer.Option(None, min=0.01, max=0.5, help="[default: 0.15]"),
    seed: int | None = typer.Option(None, help="[default: 0]"),
    threads: int | None = typer.Option(None, min=1, help="torch threads"),
    encoder: str | None = typer.Option(
        None, help="head: catalog name (chatlens models list), HF id or dir [default: CHATLENS_ENCODER_PATH]"
    ),
    cap_per_class: int | None = typer.Option(
        None, min=1, help="head: at most N rows per label (rarer labels kept whole), weighted back"
    ),
    cache_dir: Path | None = typer.Option(None, help="head: cache encoder features here (resumable)"),
    predictions: Path | None = typer.Option(
        None, help="head/--adapt: write the validation logits, labels and weights to this .npz"
    ),
    finetune: bool = typer.Option(
        False, "--finetune", help="fine-tune the encoder end to end, log to MLflow"
    ),
    adapt: bool = typer.Option(
        False, "--adapt", help="train a LoRA adapter of --encoder together with the head (needs peft)"
    ),
    rank: int = typer.Option(8, min=1, help="--adapt: LoRA rank"),
    base: str | None = typer.Option(None, help="--finetune: HF id or path [default: bundled MiniLM]"),
    max_length: int = typer.Option(128, min=8, help="--finetune/--adapt: tokens per message"),
    batch_size: int = typer.Option(32, min=1, help="--finetune/--adapt: messages per step"),
    lr: float | None = typer.Option(
        None, help="--finetune/--adapt: encoder (adapter) learning rate [default: 5e-5 / 3e-4]"
    ),
    register: str = typer.Option("chatlens-minilm", help="--finetune: registered model name"),
    promote: bool = typer.Option(False, "--promote", help="--finetune: run the promotion gate at the end"),
    limit: int | None = typer.Option(None, min=10, help="--finetune: first N rows only (smoke runs)"),
) -> None:
    """Train the default head on frozen MiniLM features, or (--finetune) an encoder end to end."""
    import torch  # the [worker] extra: imported when the command runs, so `chatlens --help` needs none

    from chatlens.training.head import TrainOptions, train_head

    settings = get_settings()
    if threads:
        torch.set_num_threads(threads)
    if finetune:
        from chatlens.training.finetune import FineTuneOptions

        if len(train_files) != 1:
            raise ChatlensError("--finetune takes one --train file; concatenate them, or train a head")
        train_file = train_files[0]

        options_ft = FineTuneOptions(
            train_file=train_file, out_dir=out_dir,
            base=base, epochs=epochs or 4, lr=lr or 5e-5, batch_size=batch_size, max_length=max_length,
            val_frac=val_frac or 0.15, seed=seed or 0, device=settings.device, limit=limit,
            **({"class_weight_power": class_weight_power} if class_weight_power is not None else {}),
        )  # fmt: skip
        run_finetune(options_ft, settings.mlflow_tracking_uri, register, promote)
        return
    if adapt:
        from chatlens.training.adapt import AdaptOptions

        options_lora = AdaptOptions(
            train_files=tuple(train_files), out_dir=out_dir,
            encoder=encoder or settings.encoder_path, models_dir=settings.models_dir, rank=rank,
            epochs=epochs or 3, lr=lr or 3e-4, batch_size=batch_size, max_length=max_length,
            val_frac=val_frac or 0.15, seed=seed or 0, cap_per_class=cap_per_class, device=settings.device,
            limit=limit, predictions=predictions, alpha=2 * rank,
            class_weight_power=0.5 if class_weight_power is None else class_weight_power,
        )  # fmt: skip
        run_adapt(options_lora)
        return
    chosen: dict[str, Any] = {
        "epochs": epochs,
        "hidden_dim": hidden_dim,
        "class_weight_power": class_weight_power,
        "tune_adjustment": tune_adjustment,
        "val_frac": val_frac,
        "seed": seed,
    }
    options = TrainOptions(
        train_files=tuple(train_files),
        out_dir=out_dir,
        encoder=encoder or settings.encoder_path,
        models_dir=settings.models_dir,
        max_length=settings.max_length,
        cap_per_class=cap_per_class,
        cache_dir=cache_dir,
        device=settings.device,
        predictions=predictions,
        **{k: v for k, v in chosen.items() if v is not None},
    )
    with progress_bar() as progress:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            key = stage.split(" ")[0]
            if key not in tasks:
                tasks[key] = progress.add_task(stage, total=total)
            progress.update(tasks[key], completed=done, description=stage)

        result = train_head(options, report)
    tail = f"{result['seconds']} s ({result['encode_seconds']} s encoding)"
    out.print(validation_line(result, tail), highlight=False, soft_wrap=True)
    out.print(f"head {result['version']} written to {options.out_dir}", highlight=False, soft_wrap=True)


def run_adapt(options: AdaptOptions) -> None:
    from chatlens.training.adapt import adapt

    with progress_bar() as progress:
        task = progress.add_task("adapt", total=None)

        def report(stage: str, done: int, total: int) -> None:
            progress.update(task, description=stage, completed=done, total=total)

        result, _ = adapt(options, report)
    tail = f"best epoch {result['best_epoch']}, {result['seconds']} s on {result['device']}"
    out.print(validation_line(result, tail), highlight=False, soft_wrap=True)
    written = f"head {result['version']} and its adapter written to {options.out_dir}"
    out.print(written, highlight=False, soft_wrap=True)


def validation_line(result: dict, tail: str) -> str:
    """The one line a head trainer ends with: validation before and after the logit adjustment."""
    v0, v1 = result["validation_before_adjustment"], result["validation"]
    return (
        f"validation ({result['validation_rows']} rows, {result['validation_conversations']} conversations): "
        f"accuracy {v0['accuracy']:.3f} / macro-F1 {v0['macro_f1']:.3f} -> "
        f"with logit adjustment (tau {result['tau']:.2f}) {v1['accuracy']:.3f} / {v1['macro_f1']:.3f}; {tail}"
    )


def run_finetune(options: object, tracking_uri: str, register: str, promote: bool) -> None:
    from chatlens.training.finetune import finetune, log_and_register

    with progress_bar() as progress:
        task = progress.add_task("fine-tune", total=None)

        def report(stage: str, done: int, total: int) -> None:
            progress.update(task, description=stage, completed=done, total=total)

        result, _, _ = finetune(options, report)  # type: ignore[arg-type]
    version = log_and_register(result, options.out_dir, tracking_uri, register)  # type: ignore[attr-defined]
    v = result["validation"]
    out.print(
        f"validation ({result['validation_rows']} rows): "
        f"accuracy {v['accuracy']:.3f} / macro-F1 {v['macro_f1']:.3f} "
        f"(best epoch {result['best_epoch']}, tau {result['tau']:.2f}); "
        f"{result['seconds']} s on {result['device']}",
        highlight=False, soft_wrap=True,
    )  # fmt: skip
    out.print(f"registered {register} version {version} ({tracking_uri})", highlight=False, soft_wrap=True)
    if promote:
        _promote(register, version, tracking_uri, options.train_file, options.val_frac, options.seed, 0.01)  # type: ignore[attr-defined]


def _promote(name: str, version: str | None, tracking_uri: str, eval_file: Path, val_frac: float, seed: int,
             max_accuracy_drop: float) -> bool:  # fmt: skip
    from chatlens.training.promote import promote

    decision = promote(name, version, tracking_uri, eval_file, val_frac, seed, max_accuracy_drop)
    for who, s in decision.scores.items():
        out.print(f"{who}: accuracy {s['accuracy']:.4f} / macro-F1 {s['macro_f1']:.4f}", highlight=False)
    verdict = "promoted to @champion" if decision.promoted else "refused"
    out.print(f"version {decision.candidate} {verdict}: {decision.reason}", highlight=False, soft_wrap=True)
    return decision.promoted


@user_errors
def promote(
    model: str = typer.Option(..., "--model", help="registered model name"),
    version: str | None = typer.Option(None, help="candidate version [default: the latest]"),
    eval_file: Path = typer.Option(..., help="labelled file whose validation slice is the evaluation set"),
    val_frac: float = typer.Option(0.15, min=0.01, max=0.5),
    seed: int = typer.Option(0),
    max_accuracy_drop: float = typer.Option(0.01, min=0.0, help="accuracy the candidate may lose"),
) -> None:
    """Set @champion to a version only if it beats the champion on macro-F1 within the accuracy margin."""
    settings = get_settings()
    promoted = _promote(model, version, settings.mlflow_tracking_uri, eval_file,
                        val_frac, seed, max_accuracy_drop)  # fmt: skip
    if not promoted:
        raise typer.Exit(1)
