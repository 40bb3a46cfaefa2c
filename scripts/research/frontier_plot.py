"""Plot the classifiers' frontier: accuracy and macro-F1 on test.csv against messages per second.

    python scripts/research/frontier_plot.py docs/frontier.json docs/frontier.png

POINTS.json is a list of {"name", "accuracy", "macro_f1", "msg_per_s"} measured through the real
pipeline (see README, "The accurate classifier").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main(points_file: Path, out: Path) -> None:
    points = json.loads(points_file.read_text(encoding="utf-8"))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    targets = {"accuracy": 0.55, "macro_f1": 0.33}  # the bar, both from one model
    for ax, metric, title in ((axes[0], "accuracy", "accuracy"), (axes[1], "macro_f1", "macro-F1")):
        ax.axhline(targets[metric], color="grey", linestyle="--", linewidth=1, label="target")
        for p in points:
            ax.scatter(p["msg_per_s"], p[metric], s=50)
            ax.annotate(p["name"], (p["msg_per_s"], p[metric]), textcoords="offset points", xytext=(5, 5))
        ax.set_xscale("log")
        ax.set_xlabel("messages / s (one worker, 2 threads, this 2-core CPU)")
        ax.set_ylabel(f"{title} on test.csv")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower left")
    fig.suptitle("Classifier frontier: quality against throughput")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
