"""`chatlens train head|adapt|finetune` and `chatlens promote`.

Each trainer is a sub-command with only its own options. The defaults here are the options dataclasses'
(`TrainOptions`, `AdaptOptions`, `FineTuneOptions`), written out because those modules import torch and
`chatlens --help` must not; a test holds the two equal.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.progress import TaskID

from chatlens.core.console import out, progress_bar, user_errors
from chatlens.core.redact import redact_url
from chatlens.core.settings import get_settings
from chatlens.training.report import validation_line

T = TypeVar("T")
Progress = Callable[[str, int, int], None]

train_app = typer.Typer(
    name="train",
    help="Train a classifier on labelled files: a head on a frozen encoder (head), a LoRA adapter with its "
    "head (adapt), or an encoder end to end, registered in MLflow (finetune).",
    no_args_is_help=True,
)

TrainFiles = Annotated[
    list[Path],
    typer.Option("--train", help="labelled CSV, JSONL or Parquet file; repeat to train on several"),
]
Epochs = Annotated[int, typer.Option(min=1, help="passes over the training rows")]
ValFrac = Annotated[
    float, typer.Option(min=0.01, max=0.5, help="share of the conversations held out for validation")
]
Seed = Annotated[int, typer.Option(help="seed of the validation split, the sampling and the initial weights")]
Threads = Annotated[int | None, typer.Option(min=1, help="torch threads")]
ClassWeightPower = Annotated[
    float, typer.Option(min=0.0, max=1.0, help="loss weight ~ (1/class frequency)^power")
]
Encoder = Annotated[
    str | None,
    typer.Option(help="catalog name (chatlens models list), HF id or dir \\[default: CHATLENS_ENCODER_PATH]"),
]
CapPerClass = Annotated[
    int | None, typer.Option(min=1, help="at most N rows per label (rarer labels kept whole), weighted back")
]
Predictions = Annotated[
    Path | None, typer.Option(help="write the validation logits, labels and weights to this .npz")
]
MaxLength = Annotated[int, typer.Option(min=8, help="tokens per message")]
BatchSize = Annotated[int, typer.Option(min=1, help="messages per step")]
Limit = Annotated[int | None, typer.Option(min=10, help="first N rows only (smoke runs)")]


@train_app.command("head")
@user_errors
def train_head_command(
    train_files: TrainFiles,
    out_dir: Annotated[Path, typer.Option("--out", help="directory to write head.safetensors/head.json to")],
    epochs: Epochs = 15,
    hidden_dim: Annotated[int, typer.Option(min=0, help="0 = a linear head")] = 0,
    class_weight_power: ClassWeightPower = 0.5,
    tune_adjustment: Annotated[
        bool, typer.Option(help="tune the logit adjustment's tau on validation")
    ] = True,
    val_frac: ValFrac = 0.15,
    seed: Seed = 0,
    threads: Threads = None,
    encoder: Encoder = None,
    cap_per_class: CapPerClass = None,
    cache_dir: Annotated[Path | None, typer.Option(help="cache encoder features here (resumable)")] = None,
    predictions: Predictions = None,
) -> None:
    """Train the default head on frozen encoder features (the bundled MiniLM unless --encoder), computed by
    CHATLENS_RUNTIME: torch (also for auto), or onnx / onnx-int8 to fit the head on an export's features."""
    from chatlens.backends.runtime import Runtime
    from chatlens.training.head import TrainOptions, train_head

    settings = get_settings()
    options = TrainOptions(
        train_files=tuple(train_files), out_dir=out_dir, epochs=epochs, hidden_dim=hidden_dim,
        class_weight_power=class_weight_power, tune_adjustment=tune_adjustment, val_frac=val_frac, seed=seed,
        encoder=encoder or settings.encoder_path, models_dir=settings.models_dir,
        max_length=settings.max_length, cap_per_class=cap_per_class, cache_dir=cache_dir,
        device=settings.device, predictions=predictions, runtime=Runtime(settings.runtime),
        exports_dir=settings.exports_path,
    )  # fmt: skip
    result = _with_progress(threads, lambda report: train_head(options, report))
    tail = f"{result['seconds']} s ({result['encode_seconds']} s encoding)"
    out.print(validation_line(result, tail), highlight=False, soft_wrap=True)
    out.print(f"head {result['version']} written to {out_dir}", highlight=False, soft_wrap=True)


@train_app.command("split-valid")
@user_errors
def split_valid_command(
    file: Annotated[Path, typer.Argument(help="labelled CSV of whole conversations (valid.csv)")],
    out_dir: Annotated[
        Path, typer.Option("--out", help="directory to write <stem>-train.csv and <stem>-heldout.csv to")
    ],
    held_out: Annotated[
        float, typer.Option(min=0.01, max=0.9, help="share of the conversations held out")
    ] = 0.3,
    seed: Annotated[int, typer.Option(help="seed of the conversation permutation")] = 22,
) -> None:
    """Split a file by conversation, seeded: the held-out part is whole conversations in order, for evaluation
    with context, never trained on (the defaults are the documented split of valid.csv)."""
    from chatlens.training.split import split_conversations

    split = split_conversations(file, out_dir, held_out, seed)
    for path, rows, conversations in (
        (split.train, split.train_rows, split.train_conversations),
        (split.held_out, split.held_out_rows, split.held_out_conversations),
    ):
        out.print(f"{path}: {rows} rows, {conversations} conversations", highlight=False, soft_wrap=True)


@train_app.command("adapt")
@user_errors
def train_adapt_command(
    train_files: TrainFiles,
    out_dir: Annotated[
        Path, typer.Option("--out", help="directory to write head.safetensors/head.json and adapter/ to")
    ],
    encoder: Encoder = None,
    rank: Annotated[int, typer.Option(min=1, help="LoRA rank (alpha is twice the rank)")] = 8,
    epochs: Epochs = 3,
    lr: Annotated[float, typer.Option(help="adapter learning rate")] = 3e-4,
    batch_size: BatchSize = 32,
    max_length: MaxLength = 128,
    class_weight_power: ClassWeightPower = 0.5,
    val_frac: ValFrac = 0.15,
    seed: Seed = 0,
    threads: Threads = None,
    cap_per_class: CapPerClass = None,
    limit: Limit = None,
    predictions: Predictions = None,
) -> None:
    """Train a LoRA adapter of --encoder together with the head (needs peft)."""
    from chatlens.training.adapt import AdaptOptions, adapt

    settings = get_settings()
    options = AdaptOptions(
        train_files=tuple(train_files), out_dir=out_dir, encoder=encoder or settings.encoder_path,
        models_dir=settings.models_dir, rank=rank, alpha=2 * rank, epochs=epochs, lr=lr,
        batch_size=batch_size, max_length=max_length, class_weight_power=class_weight_power,
        val_frac=val_frac, seed=seed, cap_per_class=cap_per_class, device=settings.device, limit=limit,
        predictions=predictions,
    )  # fmt: skip
    result, _ = _with_progress(threads, lambda report: adapt(options, report))
    tail = f"best epoch {result['best_epoch']}, {result['seconds']} s on {result['device']}"
    out.print(validation_line(result, tail), highlight=False, soft_wrap=True)
    written = f"head {result['version']} and its adapter written to {out_dir}"
    out.print(written, highlight=False, soft_wrap=True)


@train_app.command("finetune")
@user_errors
def train_finetune_command(
    train_files: TrainFiles,
    out_dir: Annotated[Path, typer.Option("--out", help="directory to write the fine-tuned model to")],
    base: Annotated[str | None, typer.Option(help="HF id or path \\[default: bundled MiniLM]")] = None,
    epochs: Epochs = 4,
    lr: Annotated[float, typer.Option(help="encoder learning rate")] = 5e-5,
    batch_size: BatchSize = 32,
    max_length: MaxLength = 128,
    class_weight_power: ClassWeightPower = 0.5,
    val_frac: ValFrac = 0.15,
    seed: Seed = 0,
    threads: Threads = None,
    limit: Limit = None,
    register: Annotated[str, typer.Option(help="registered model name")] = "chatlens-minilm",
    promote: Annotated[bool, typer.Option("--promote", help="run the promotion gate at the end")] = False,
) -> None:
    """Fine-tune an encoder end to end, log the run to MLflow and register a version."""
    from chatlens.training.finetune import FineTuneOptions, finetune, log_and_register

    settings = get_settings()
    options = FineTuneOptions(
        train_files=tuple(train_files), out_dir=out_dir, base=base, epochs=epochs, lr=lr,
        batch_size=batch_size, max_length=max_length, class_weight_power=class_weight_power,
        val_frac=val_frac, seed=seed, device=settings.device, limit=limit,
    )  # fmt: skip
    result, _ = _with_progress(threads, lambda report: finetune(options, report))
    tracking_uri = settings.mlflow_tracking_uri
    version = log_and_register(result, out_dir, tracking_uri, register)
    tail = f"best epoch {result['best_epoch']}, {result['seconds']} s on {result['device']}"
    out.print(validation_line(result, tail), highlight=False, soft_wrap=True)
    where = redact_url(tracking_uri)
    out.print(f"registered {register} version {version} ({where})", highlight=False, soft_wrap=True)
    if promote:
        _promote(register, version, tracking_uri, train_files, val_frac, seed, 0.01)


def _with_progress(threads: int | None, work: Callable[[Progress], T]) -> T:
    """Run a trainer under a progress bar, one bar per stage (the stage's first word)."""
    import torch  # the [worker] extra: imported when a trainer runs, so `chatlens --help` needs none

    if threads:
        torch.set_num_threads(threads)
    with progress_bar() as progress:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            key = stage.split(" ")[0]
            if key not in tasks:
                tasks[key] = progress.add_task(stage, total=total)
            progress.update(tasks[key], completed=done, total=total, description=stage)

        return work(report)


def _promote(name: str, version: str | None, tracking_uri: str, eval_files: list[Path], val_frac: float,
             seed: int, max_accuracy_drop: float) -> bool:  # fmt: skip
    from chatlens.training.promote import promote

    decision = promote(name, version, tracking_uri, eval_files, val_frac, seed, max_accuracy_drop)
    for who, s in decision.scores.items():
        out.print(f"{who}: accuracy {s['accuracy']:.4f} / macro-F1 {s['macro_f1']:.4f}", highlight=False)
    verdict = "promoted to @champion" if decision.promoted else "refused"
    out.print(f"version {decision.candidate} {verdict}: {decision.reason}", highlight=False, soft_wrap=True)
    return decision.promoted


@user_errors
def promote(
    model: str = typer.Option(..., "--model", help="registered model name"),
    version: str | None = typer.Option(None, help="candidate version \\[default: the latest]"),
    eval_files: list[Path] = typer.Option(
        ...,
        "--eval-file",
        help="labelled file whose validation conversations are the evaluation set; repeat as at training",
    ),
    val_frac: float = typer.Option(0.15, min=0.01, max=0.5, help="as at training"),
    seed: int = typer.Option(0, help="as at training"),
    max_accuracy_drop: float = typer.Option(0.01, min=0.0, help="accuracy the candidate may lose"),
) -> None:
    """Set @champion to a version only if it beats the champion on macro-F1 within the accuracy margin."""
    settings = get_settings()
    promoted = _promote(model, version, settings.mlflow_tracking_uri, eval_files,
                        val_frac, seed, max_accuracy_drop)  # fmt: skip
    if not promoted:
        raise typer.Exit(1)
