import typer

from producer.cli import produce

typer.run(produce)
