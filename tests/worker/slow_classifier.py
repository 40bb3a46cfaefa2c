"""A toy classifier that takes its time, so a test can kill or stop a worker in the middle of a batch.

Run as a module it is a worker with this classifier registered:
`python -m tests.worker.slow_classifier --queue classify-slow ...` (the arguments of `chatlens worker`).
"""

from __future__ import annotations

import time

from chatlens.backends.classifier import CLASSIFIERS, Output
from chatlens.core.settings import Settings

SECONDS_PER_BATCH = 4.0


class SlowClassifier:
    version = "slow-1"

    def predict(self, texts: list[str]) -> list[Output]:
        time.sleep(SECONDS_PER_BATCH)
        return [Output("Neutral", 0.5) for _ in texts]


def build(settings: Settings) -> SlowClassifier:
    return SlowClassifier()


def register() -> None:
    if "slow" not in CLASSIFIERS._factories:
        CLASSIFIERS.add("slow", "tests.worker.slow_classifier:build")


if __name__ == "__main__":
    import typer

    from worker.cli import WorkerCommands
    from worker.runner import WORKER_JOBS

    register()
    typer.run(WorkerCommands(WORKER_JOBS).worker)
