import typer

from worker.cli import WorkerCommands
from worker.runner import WORKER_JOBS

# The worker role alone: `chatlens worker` (chatlens/cli) also runs the nightly evaluation.
typer.run(WorkerCommands(WORKER_JOBS).worker)
