import typer

from eval.cli import evaluate

typer.run(evaluate)
