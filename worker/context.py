"""`WorkerContext`: what a worker process hands every job — its settings, its Redis connection, and
the models it has loaded.

Each model is built once per process, on first use, and kept: a worker preloads the models of its
queues before it takes a job, so a job only ever finds them here. Each load is counted in Redis,
which is how the tests and `chatlens bench` show there is one load per process.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chatlens.backends.classifier import CLASSIFIERS, Classifier
from chatlens.backends.summariser import SUMMARISERS, Summariser
from chatlens.core.context import JobContext
from chatlens.core.store import process_name
from worker.metrics import WorkerMetrics


@dataclass
class WorkerContext(JobContext):
    classifiers: dict[str, Classifier] = field(default_factory=dict, init=False)
    summarisers: dict[str, Summariser] = field(default_factory=dict, init=False)
    metrics: WorkerMetrics = field(init=False)  # Prometheus and the progress line (worker/metrics.py)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.metrics = WorkerMetrics(self.settings.progress_log_s, process_name())

    def classifier(self, name: str) -> Classifier:
        """The classifier registered as `name`, the one name its loads and results are counted under."""
        if name not in self.classifiers:
            self.classifiers[name] = CLASSIFIERS.build(name, self.settings)
            self.store.record_model_load(name)
            self.metrics.model_loaded(name)
        return self.classifiers[name]

    def summariser(self, backend: str) -> Summariser:
        if backend not in self.summarisers:
            self.summarisers[backend] = SUMMARISERS.build(backend, self.settings)
            self.store.record_model_load(f"summarise-{backend}")
            self.metrics.model_loaded(f"summarise-{backend}")
        return self.summarisers[backend]
