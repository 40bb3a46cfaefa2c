import typer

from worker.cli import worker

typer.run(worker)
