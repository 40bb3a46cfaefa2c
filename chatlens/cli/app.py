"""The `chatlens` command: the one place that assembles every role; each sub-command is defined next to
the code it drives."""

from __future__ import annotations

import typer

from chatlens.backends.catalog_cli import models_app
from chatlens.bench.cli import bench
from chatlens.cli.demo import demo
from chatlens.cli.job_functions import JOB_FUNCTIONS
from chatlens.ops.cli import status
from chatlens.training.cli import promote, train_app
from eval.cli import cron, eval_summaries, evaluate, results
from producer.cli import produce, summarise
from producer.drop import drop
from worker.cli import WorkerCommands

app = typer.Typer(
    name="chatlens",
    help="Sentiment/emotion for every chat message, a summary for every conversation, through Redis/RQ "
    "workers, with an honest evaluation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
workers = WorkerCommands(JOB_FUNCTIONS)
app.command()(produce)
app.command()(workers.worker)
app.command("eval")(evaluate)
app.command()(results)
app.command()(summarise)
app.command("eval-summaries")(eval_summaries)
app.add_typer(train_app)
app.command()(bench)
app.command()(demo)
app.command()(cron)
app.command()(promote)
app.command()(workers.failed)
app.command()(workers.requeue)
app.command()(status)
app.command()(drop)
app.add_typer(models_app)


if __name__ == "__main__":
    app()
