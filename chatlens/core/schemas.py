"""The records chatlens stores in Redis and passes to its jobs, as JSON (never pickled), and
`ProduceCounts`, the producer's tally, which is returned and printed but never stored."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from chatlens.core.keys import model_name


def _now() -> datetime:
    return datetime.now(UTC)


def message_id(conversation_id: str, position: int, text: str) -> str:
    """Stable id, so that producing the same file twice enqueues nothing new."""
    digest = hashlib.sha256(f"{conversation_id}\x1f{position}\x1f{text}".encode()).hexdigest()
    return digest[:20]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Message(Record):
    id: str
    conversation_id: str
    position: int = Field(ge=0, description="index of the turn within its conversation, in file order")
    text: str
    label: str | None = None
    previous: str | None = Field(
        None,
        description="the previous turn of the conversation as the producer read it, truncated "
        "(CHATLENS_CONTEXT_CHARS); None when there was none",
    )


class BatchItem(Record):
    id: str
    text: str


class MicroBatch(Record):
    """The argument of one classify job."""

    run: str
    items: list[BatchItem]


class Conversation(Record):
    """A conversation's turns, ordered by position: what a summary job summarises (one per job for a
    generative backend, several in one job for the extractive one)."""

    run: str
    conversation_id: str
    turns: list[str] = Field(min_length=1)


class Summary(Record):
    conversation_id: str
    backend: str
    model_id: str
    text: str
    turns: int
    input_tokens: int
    output_tokens: int
    calls: int = Field(ge=1, description="generation calls: more than one when the conversation was chunked")
    latency_ms: float
    worker: str
    created_at: datetime = Field(default_factory=_now)


class SummaryError(Record):
    conversation_id: str
    backend: str
    error: str
    created_at: datetime = Field(default_factory=_now)


class Prediction(Record):
    message_id: str
    model: str
    model_version: str
    label: str
    confidence: float = Field(ge=0.0, le=1.0)
    batch_size: int
    batch_latency_ms: float
    worker: str
    created_at: datetime = Field(default_factory=_now)


class MessageError(Record):
    message_id: str
    model: str
    error: str
    created_at: datetime = Field(default_factory=_now)


class ProduceCounts(Record):
    read: int = 0
    dropped_missing: int = 0
    dropped_duplicate: int = 0
    rejected: int = 0
    not_selected: int = 0  # left out by --sample-frac or --split
    enqueued: int = 0
    already_present: int = 0
    batches: int = 0
    conversations: int = 0  # conversations enqueued for a summary (a job may carry several)

    def line(self) -> str:
        """The one line `produce` ends with, whether it read a file or a stream."""
        return (
            f"read {self.read} / dropped-missing {self.dropped_missing} / "
            f"dropped-duplicate {self.dropped_duplicate} / rejected {self.rejected} / "
            f"not-selected {self.not_selected} / enqueued {self.enqueued} / "
            f"already-present {self.already_present}  ({self.batches} batches) / "
            f"conversations-to-summarise {self.conversations}"
        )


class RunInfo(Record):
    run: str
    source: str
    dataset_hash: str
    messages: int
    labelled: int
    classifiers: list[str]
    # Whether the producer enqueued summaries for the run (settings.summarise, or `chatlens summarise`):
    # `chatlens status` expects one summary per conversation only then. None: recorded by a producer
    # from before the field, read as "expected if any summary was written".
    summaries: bool | None = None
    created_at: datetime = Field(default_factory=_now)
    updated_at: datetime = Field(default_factory=_now)


class LastEval(Record):
    """The figures of one evaluation of a run, kept in Redis for `chatlens status`, the regression check
    and the trend plot (the full document is metrics.json in the reports dir)."""

    run: str
    evaluated_at: datetime = Field(default_factory=_now)
    results_version: int = Field(0, description="the run's results-version counter when it was evaluated")
    out_dir: str
    # model -> {"accuracy", "macro_f1", "recall:<label>"...}; summary backend -> {"rougeL"}
    models: dict[str, dict[str, float]] = Field(default_factory=dict)
    summaries: dict[str, dict[str, float]] = Field(default_factory=dict)
    regressions: list[str] = Field(default_factory=list, description="one line per figure that dropped")
    mlflow_run_ids: list[str] = Field(default_factory=list)

    @field_validator("models")
    @classmethod
    def _models_by_key(cls, models: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        # An evaluation recorded before models were named by their registry keys: tonight's figures
        # compare with it, and the trend continues, under the key.
        return {model_name(name): figures for name, figures in models.items()}

    @property
    def regression(self) -> bool:
        return bool(self.regressions)
