"""Plot the classifiers' frontier: accuracy and macro-F1 against messages per second, on test.csv
(shuffled single turns, no context) and on the held-out whole conversations of valid.csv (fed in order).

    python scripts/research/frontier_plot.py docs/frontier.json docs/frontier.png

POINTS.json is a list of {"name", "msg_per_s", "context" (bool), "test": {"accuracy", "macro_f1"},
"heldout": {...} or null, "speed": how msg_per_s was measured, "quality": how the figures were}. A model
that reads the previous turn is drawn hollow; the default the product ships is starred.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.lines import Line2D

TARGETS = {"accuracy": 0.55, "macro_f1": 0.33}  # the bar on held-out, both from one model
MIN_RATE = 150  # the speed floor for the default (bench pipeline figure)


def main(points_file: Path, out: Path) -> None:
    points = json.loads(points_file.read_text(encoding="utf-8"))
    fig, axes = plt.subplots(2, 2, figsize=(12, 9.5), sharex=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    panels = (("test", "test.csv"), ("heldout", "valid.csv held-out, in order"))
    for row, (split, where) in enumerate(panels):
        for col, (metric, title) in enumerate((("accuracy", "accuracy"), ("macro_f1", "macro-F1"))):
            ax = axes[row][col]
            if split == "heldout":
                ax.axhline(TARGETS[metric], color="grey", linestyle="--", linewidth=1)
            ax.axvline(MIN_RATE, color="grey", linestyle=":", linewidth=1)
            for k, p in enumerate(points):
                figures = p.get(split)
                if not figures:
                    continue
                colour = colours[k % len(colours)]
                ax.scatter(
                    p["msg_per_s"],
                    figures[metric],
                    s=160 if p.get("shipped") else 60,
                    marker="*" if p.get("shipped") else "o",
                    facecolors="none" if p.get("context") else colour,
                    edgecolors=colour,
                    linewidths=1.5,
                    label=p["name"]
                    if (row, col) == (0, 0) or (split == "heldout" and not p.get("test"))
                    else None,
                    zorder=3,
                )
            ax.set_xscale("log")
            ax.set_ylabel(f"{title}, {where}")
            if row == 1:
                ax.set_xlabel("messages / s (1 worker, 2 threads, 2-core x86_64)")
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    handles += [Line2D([], [], color="grey", linestyle="--"), Line2D([], [], color="grey", linestyle=":")]
    labels += ["held-out target (0.55 / 0.33)", "150 messages/s floor"]
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(
        "Classifier frontier (hollow = reads the previous turn, star = shipped default; "
        "speeds and their sources in docs/frontier.json)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.16, 1, 0.97))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
