"""The `chatlens status` screen: three tables (queues, workers, runs) drawn from `gather_status`'s dict."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    # A heartbeat written a few milliseconds after this host's clock read is no reason to print "-0s".
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def queues_table(rows: list[dict]) -> Table:
    table = Table(title="queues", title_justify="left", expand=False)
    for column in ("queue", "depth", "oldest", "running", "failed", "workers"):
        table.add_column(column, justify="left" if column == "queue" else "right")
    for row in rows:
        # A queue with jobs and nobody serving it is the first thing an operator must see.
        unserved = row["depth"] > 0 and row["workers"] == 0
        table.add_row(
            row["name"],
            str(row["depth"]),
            _age(row["oldest_age_s"]),
            str(row["started"]),
            Text(str(row["failed"]), style="red" if row["failed"] else ""),
            Text(
                str(row["workers"]) + (" (none!)" if unserved else ""), style="bold red" if unserved else ""
            ),
        )
    return table


def workers_table(rows: list[dict]) -> Table:
    table = Table(title="workers", title_justify="left")
    for column in ("worker", "host:pid", "queues", "state", "job", "heartbeat", "ok", "failed", "peak RSS"):
        table.add_column(column, justify="right" if column in ("ok", "failed", "peak RSS") else "left")
    table.add_column("models")
    if not rows:
        table.add_row(Text("no live worker", style="bold red"), *[""] * 9)
    for row in rows:
        rss = row["peak_rss_mb"]
        table.add_row(
            row["name"],
            f"{row['host']}:{row['pid']}",
            ", ".join(row["queues"]),
            row["state"],
            row["current_job"] or "-",
            _age(row["heartbeat_age_s"]) + " ago" if row["heartbeat_age_s"] is not None else "-",
            str(row["jobs_done"]),
            Text(str(row["jobs_failed"]), style="red" if row["jobs_failed"] else ""),
            f"{rss:.0f} MiB" if rss is not None else "-",
            ", ".join(f"{m} x{n}" for m, n in row["models"].items()) or "-",
        )
    return table


def _eval_cell(last: dict | None) -> Text:
    if not last:
        return Text("-")
    figures = ", ".join(f"{m} F1 {f['macro_f1']:.3f}" for m, f in last["models"].items() if "macro_f1" in f)
    figures += "".join(
        f", {b} ROUGE-L {f['rougeL']:.3f}" for b, f in last["summaries"].items() if "rougeL" in f
    )
    if last["regression"]:
        return Text(f"REGRESSION: {'; '.join(last['regressions'])}", style="bold red")
    return Text(figures or "evaluated", style="green")


def runs_table(rows: list[dict]) -> Table:
    table = Table(title="runs", title_justify="left")
    for column in ("run", "messages", "results (done/total)", "summaries", "errors", "failed jobs"):
        table.add_column(column, justify="left" if column in ("run", "results (done/total)") else "right")
    table.add_column("msg/s", justify="right")
    table.add_column("ETA", justify="right")
    table.add_column("last eval")
    if not rows:
        table.add_row("no run in Redis", *[""] * 8)
    for row in rows:
        results = "\n".join(f"{m}: {f['done']}/{f['total']}" for m, f in row["models"].items()) or "-"
        summaries = str(row["summaries"]) + (
            f" (+{row['summary_errors']} failed)" if row["summary_errors"] else ""
        )
        eta = "done" if row["finished"] else _age(row["eta_s"])
        table.add_row(
            row["run"],
            str(row["messages"]),
            results,
            summaries,
            Text(str(row["errors"]), style="red" if row["errors"] else ""),
            Text(str(row["failed_jobs"]), style="red" if row["failed_jobs"] else ""),
            f"{row['messages_per_s']:.1f}",
            eta,
            _eval_cell(row["last_eval"]),
        )
    return table


def render(status: dict[str, Any]) -> Group:
    return Group(
        Text(f"chatlens status at {status['generated_at']}", style="bold"),
        queues_table(status["queues"]),
        workers_table(status["workers"]),
        runs_table(status["runs"]),
    )
