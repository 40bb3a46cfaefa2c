"""The nightly trend: macro-F1 and accuracy per model (and ROUGE-L per summary backend) over the run's
last evaluations, one PNG beside report.md."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # workers and CI have no display
import matplotlib.pyplot as plt
from matplotlib.dates import date2num

from chatlens.core.schemas import LastEval

MIN_POINTS = 2


def plot_trend(path: Path, evaluations: list[LastEval]) -> bool:
    """`evaluations` oldest first; a regression night is marked with a red ring. A trend needs two
    evaluations: with fewer, the image says so instead of a lone dot on a date axis matplotlib widens
    to years. Returns whether a trend was drawn."""
    if len(evaluations) < MIN_POINTS:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        ax.axis("off")
        run = evaluations[-1].run if evaluations else ""
        ax.text(
            0.5,
            0.5,
            f"run {run}: {len(evaluations)} evaluation so far.\n"
            f"The trend needs {MIN_POINTS}; it is drawn from the next one on.",
            ha="center",
            va="center",
            fontsize=12,
        )
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5))
    when = date2num([e.evaluated_at for e in evaluations])
    ax.xaxis_date()
    series: dict[str, list[float | None]] = {}
    for i, e in enumerate(evaluations):
        points = {f"{m} macro-F1": f.get("macro_f1") for m, f in e.models.items()}
        points |= {f"{m} accuracy": f.get("accuracy") for m, f in e.models.items()}
        points |= {f"{b} ROUGE-L": f.get("rougeL") for b, f in e.summaries.items()}
        for name, value in points.items():
            series.setdefault(name, [None] * len(evaluations))[i] = value
    for name, values in sorted(series.items()):
        ax.plot(when, [float("nan") if v is None else v for v in values], marker="o", label=name)
    flagged = date2num([e.evaluated_at for e in evaluations if e.regression])
    if len(flagged):
        ax.scatter(
            flagged, [0.0] * len(flagged), s=120, facecolors="none", edgecolors="red", label="regression"
        )
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("score")
    run = evaluations[-1].run if evaluations else ""
    ax.set_title(f"run {run}: last {len(evaluations)} evaluations")
    if series:
        ax.legend(fontsize=7, loc="lower left")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
