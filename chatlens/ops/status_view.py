"""The `chatlens status` screen: three tables (queues, workers, runs) drawn from `gather_status`'s dict."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console, Group
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
        table.add_column(column, justify="left" if column == "queue" else "right", overflow="fold")
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


# Below this width (an 80-column terminal) the tables leave out their least needed columns, and names
# fold onto a second line rather than being cut.
WIDE = 120


def _worker_cells(row: dict) -> dict[str, str | Text]:
    rss = row["peak_rss_mb"]
    return {
        "host:pid": f"{row['host']}:{row['pid']}",
        "queues": ", ".join(row["queues"]),
        "state": row["state"],
        "job": row["current_job"] or "-",
        "heartbeat": _age(row["heartbeat_age_s"]) + " ago" if row["heartbeat_age_s"] is not None else "-",
        "ok": str(row["jobs_done"]),
        "failed": Text(str(row["jobs_failed"]), style="red" if row["jobs_failed"] else ""),
        "peak RSS": f"{rss:.0f} MiB" if rss is not None else "-",
        "models": ", ".join(f"{m} x{n}" for m, n in row["models"].items()) or "-",
    }


def workers_table(rows: list[dict], width: int = WIDE) -> Table:
    """One row per worker, a column per figure, where that fits `width` with every worker's name whole
    (a worker's name is what rq, the logs and `kill` go by: never cut); else one cell per worker: its
    name on a line of its own, what it does on the next."""
    cells = [_worker_cells(row) for row in rows]
    # The narrowest each column may be: names, host:pid and queue names whole, the rest folded.
    minimum = {
        "worker": max((len(row["name"]) for row in rows), default=14),
        "host:pid": max((len(str(c["host:pid"])) for c in cells), default=8),
        "queues": max((len(name) for row in rows for name in row["queues"]), default=6),
        "state": 9,
        "job": 8,
        "heartbeat": 9,
        "ok": 4,
        "failed": 6,
        "peak RSS": 8,
        "models": 12,
    }
    needed = sum(minimum.values()) + 3 * len(minimum) + 1  # each cell's padding and rule, and the edge
    if width >= WIDE and needed <= width:
        table = Table(title="workers", title_justify="left")
        for column, least in minimum.items():
            right = column in ("ok", "failed", "peak RSS")
            table.add_column(
                column,
                justify="right" if right else "left",
                overflow="fold",
                min_width=least,
                max_width=None if column in ("worker", "host:pid", "queues") else max(least, 24),
            )
        if not rows:
            table.add_row(Text("no live worker", style="bold red"), *[""] * (len(minimum) - 1))
        for row, cell in zip(rows, cells, strict=True):
            shown = {**cell, "queues": "\n".join(row["queues"])}
            table.add_row(row["name"], *(shown[c] for c in list(minimum)[1:]))
        if _fits(table, width):  # rich may still lay it out wider than its columns' minimums add up to
            return table
    table = Table(title="workers", title_justify="left")
    table.add_column("worker / queues, state, heartbeat, jobs ok/failed", overflow="fold")
    if not rows:
        table.add_row(Text("no live worker", style="bold red"))
    for row, cell in zip(rows, cells, strict=True):
        line = f"  {cell['queues']} · {row['state']} · beat {cell['heartbeat']}"
        line += f" · {row['jobs_done']} ok / {row['jobs_failed']} failed"
        table.add_row(Text(row["name"], style="bold") + Text("\n" + line))
    return table


def _fits(table: Table, width: int) -> bool:
    """Whether `table` drawn `width` columns wide stays within them (rich crops, never says)."""
    console = Console(width=width, file=io.StringIO(), color_system=None)
    console.print(table, crop=False)
    return max(map(len, console.file.getvalue().splitlines()), default=0) <= width  # type: ignore[attr-defined]


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


def _summaries_cell(row: dict) -> str:
    """Written / expected, with the errors; a run produced with summaries off expects none."""
    if not row["summaries_expected"] and not row["summaries"]:
        return "-"
    cell = f"{row['summaries']}/{row['summaries_expected']}"
    return cell + (f" (+{row['summary_errors']} failed)" if row["summary_errors"] else "")


def _eta_cell(row: dict) -> str:
    if row["finished"]:
        return "done"
    # Work left and no worker moving on some of it: no estimate (see docs/reference/status.md).
    return _age(row["eta_s"]) if row["eta_s"] is not None else "?"


def runs_table(rows: list[dict], width: int = WIDE) -> Table:
    wide = width >= WIDE
    table = Table(title="runs", title_justify="left")
    table.add_column("run", overflow="fold")
    table.add_column("messages", justify="right")
    table.add_column("results (done/total)", overflow="fold")
    table.add_column("summaries", justify="right", overflow="fold")
    table.add_column("errors" if wide else "err", justify="right")
    table.add_column("failed jobs" if wide else "failed", justify="right")
    if wide:
        table.add_column("msg/s", justify="right")
    table.add_column("ETA", justify="right")
    if wide:
        table.add_column("last eval")
    if not rows:
        table.add_row("no run in Redis", *[""] * (len(table.columns) - 1))
    for row in rows:
        results = "\n".join(f"{m}: {f['done']}/{f['total']}" for m, f in row["models"].items()) or "-"
        cells: list[str | Text] = [
            row["run"],
            str(row["messages"]),
            results,
            _summaries_cell(row),
            Text(str(row["errors"]), style="red" if row["errors"] else ""),
            Text(str(row["failed_jobs"]), style="red" if row["failed_jobs"] else ""),
        ]
        if wide:
            cells.append(f"{row['messages_per_s']:.1f}")
        cells.append(_eta_cell(row))
        if wide:
            cells.append(_eval_cell(row["last_eval"]))
        table.add_row(*cells)
    return table


def unsummarised_lines(rows: list[dict]) -> list[Text]:
    """For each run with conversations still waiting for a summary: how many, and the first ids."""
    lines: list[Text] = []
    for row in rows:
        if row["unsummarised"]:
            more = row["unsummarised"] - len(row["unsummarised_ids"])
            ids = ", ".join(row["unsummarised_ids"]) + (f" and {more} more" if more > 0 else "")
            lines.append(
                Text(f"{row['run']}: {row['unsummarised']} conversation(s) without a summary: {ids}")
            )
    return lines


def render(status: dict[str, Any], width: int = WIDE, details: bool = False) -> Group:
    """The screen for a terminal `width` columns wide; `details` (`status --run`) adds the ids of the
    conversations still without a summary."""
    parts: list[Any] = [
        Text(f"chatlens status at {status['generated_at']}", style="bold"),
        queues_table(status["queues"]),
        workers_table(status["workers"], width),
        runs_table(status["runs"], width),
    ]
    if details:
        parts.extend(unsummarised_lines(status["runs"]))
    return Group(*parts)
