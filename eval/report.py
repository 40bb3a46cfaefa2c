"""The human side of an evaluation: report.md (models side by side) and labelled confusion heat maps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # workers and CI have no display
import matplotlib.pyplot as plt
import numpy as np

from chatlens.core.schemas import Summary
from eval.metrics import ModelMetrics


def write_report(path: Path, run: str, enqueued: int, models: list[ModelMetrics]) -> None:
    lines = [f"# chatlens evaluation: run `{run}`", "", f"{enqueued} messages enqueued.", ""]
    if not models:
        lines += ["No model has written results for this run yet.", ""]
        path.write_text("\n".join(lines), encoding="utf-8")
        return
    lines += [
        "| model | accuracy | macro-F1 | weighted-F1 | labelled n | coverage | errors | version |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for m in models:
        lines.append(
            f"| {m.model} | {m.accuracy:.3f} | {m.macro_f1:.3f} | {m.weighted_f1:.3f} | {m.n} | "
            f"{m.coverage:.3f} | {m.errors} | {', '.join(m.model_versions)} |"
        )
    labels = [label for m in models for label in m.labels]
    labels = list(dict.fromkeys(labels))
    header = (
        "| label | support | "
        + " | ".join(f"{m.model} P | {m.model} R | {m.model} F1" for m in models)
        + " |"
    )
    lines += ["", "## Per class", "", header, "| --- | ---: |" + " ---: | ---: | ---: |" * len(models)]
    for label in labels:
        cells: list[str] = []
        support = 0
        for m in models:
            scores = next((c for c in m.per_class if c.label == label), None)
            if scores is None:
                cells += ["-", "-", "-"]
            else:
                support = max(support, scores.support)
                cells += [f"{scores.precision:.3f}", f"{scores.recall:.3f}", f"{scores.f1:.3f}"]
        lines.append(f"| {label} | {support} | " + " | ".join(cells) + " |")
    lines += ["", "Confusion matrices: " + ", ".join(f"`confusion_{m.model}.png`" for m in models), ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def summary_counts(summaries: dict[str, Summary], errors: int, conversations: int) -> dict[str, float | int]:
    """What the workers summarised, reference summaries or not: written, errors, conversations, and the
    mean length of a written summary in words (0 when none is written)."""
    words = [len(s.text.split()) for s in summaries.values()]
    return {
        "written": len(summaries),
        "errors": errors,
        "conversations": conversations,
        "mean_words": round(sum(words) / len(words), 1) if words else 0.0,
    }


def summary_counts_section(counts: dict[str, float | int]) -> str:
    """report.md's summary counts; empty for a run with no summary written, failed or expected."""
    if not (counts["written"] or counts["errors"]):
        return ""
    cells = (counts["written"], counts["errors"], counts["conversations"], f"{counts['mean_words']:.1f}")
    row = "| " + " | ".join(str(c) for c in cells) + " |"
    return (
        "\n## Summaries written\n\n| written | errors | conversations | mean words |\n"
        "| ---: | ---: | ---: | ---: |\n" + row + "\n"
    )


def plot_confusion(path: Path, metrics: ModelMetrics, run: str) -> None:
    """Colour is the row-normalised share (recall), so rare classes stay visible; cells show counts."""
    matrix = np.array(metrics.confusion_matrix, dtype=float)
    size = max(4.0, 0.9 * len(metrics.labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    if matrix.size:
        shares = matrix / np.clip(matrix.sum(axis=1, keepdims=True), 1, None)
        image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true label")
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{int(matrix[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if shares[i, j] > 0.5 else "black",
                )
    ticks = range(len(metrics.labels))
    ax.set_xticks(ticks, metrics.labels, rotation=40, ha="right")
    ax.set_yticks(ticks, metrics.labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(
        f"{metrics.model} on {run}: accuracy {metrics.accuracy:.3f}, macro-F1 {metrics.macro_f1:.3f}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
