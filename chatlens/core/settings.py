"""The one configuration object, read from `CHATLENS_*` environment variables (and `.env`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from chatlens.core.errors import ChatlensError
from chatlens.core.redact import redact_url

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
# fakeredis:// is the embedded in-process server (see chatlens.core.connection.FAKE_URL).
REDIS_URL_SCHEMES = ("redis", "rediss", "unix", "fakeredis")
# Settings that may carry a password (an MLflow URI can be postgresql://user:pw@...): shown redacted.
_URL_FIELDS = frozenset({"redis_url", "mlflow_tracking_uri"})


def default_models_dir() -> Path:
    """The per-user data directory (XDG), as platformdirs would give on Linux."""
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "chatlens" / "models"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHATLENS_", env_file=".env", extra="ignore")

    redis_url: str = Field(
        DEFAULT_REDIS_URL,
        description="redis://[[user]:password@]host:port/db, rediss:// (TLS), unix:///path or fakeredis://",
    )
    # TLS for rediss:// URLs (handed to redis-py as ssl_ca_certs, ssl_certfile, ssl_keyfile).
    redis_tls_ca_file: Path | None = Field(None, description="CA bundle that signed the server's cert")
    redis_tls_cert_file: Path | None = Field(None, description="client certificate (tls-auth-clients)")
    redis_tls_key_file: Path | None = Field(None, description="private key of the client certificate")
    mlflow_tracking_uri: str = Field(
        # MLflow 3 refuses its file store, so the default is a local sqlite database.
        default="sqlite:///mlflow.db",
        validation_alias=AliasChoices("CHATLENS_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"),
    )
    mlflow_experiment: str = "chatlens-eval"

    # Producer
    batch_size: int = Field(64, ge=1, le=10_000, description="messages per micro-batch (one RQ job)")
    max_message_chars: int = Field(5_000, ge=1, description="longer messages are rejected, not truncated")
    classifiers: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["default"])
    # Ingest: every input is read as a stream (a file is a finite one)
    flush_ms: int = Field(300, ge=1, description="a stream's partial micro-batch is flushed after this long")
    conversation_idle_s: float = Field(
        30.0, gt=0, description="a conversation quiet this long in a stream is summarised (again if it grows)"
    )
    context_chars: int = Field(
        300,
        ge=1,
        description=(
            "a message's previous turn is stored with it (Message.previous), cut to this many characters"
        ),
    )
    context_conversations: int = Field(
        100_000,
        ge=1,
        description="conversations whose last turn the producer remembers for the next turn's context; "
        "past this the least recently active is forgotten",
    )
    # Enough queued work that workers never starve between producer round trips, few enough jobs that
    # their Redis memory stays small: the measured trade-off is in README "Back-pressure".
    max_queued: int = Field(2_000, ge=1, description="the producer waits while a queue holds this many jobs")

    # Worker
    encoder_path: str | None = Field(None, description="HF id or local dir; None = bundled MiniLM")
    head_path: Path | None = Field(None, description="dir with head.safetensors/head.json; None = committed")
    inference_batch_size: int = Field(32, ge=1)
    max_length: int = Field(256, ge=8, description="tokens; longer messages are truncated by the encoder")
    # Base models pinned in chatlens.backends.catalog, fetched there by `chatlens models fetch NAME`.
    models_dir: Path = Field(default_factory=lambda: default_models_dir(), description="fetched base models")
    accurate_encoder: str = Field("all-mpnet-base-v2", description="catalog name, HF id or dir")
    accurate_head_path: Path | None = Field(None, description="accurate head dir; None = committed")
    threads: int | None = Field(
        None,
        ge=1,
        description="inference threads per worker (torch or ONNX Runtime); None = the runtime's default",
    )
    job_timeout_s: int = 600
    retry_intervals_s: Annotated[list[int], NoDecode] = Field(default_factory=lambda: [5, 30, 120])
    # A killed worker's job is recovered once its heartbeat key expires and a maintenance pass runs;
    # RQ's defaults (420 s + 600 s) would leave a batch stranded for up to 17 minutes.
    worker_ttl_s: int = Field(60, ge=20)
    maintenance_interval_s: int = Field(60, ge=10)
    # A running job's execution is kept alive by a heartbeat thread; once it has been silent for
    # execution_ttl_s (its worker was killed or lost Redis), any worker re-enqueues the job at its next
    # reclaim pass: a dead worker's batch is started again within about execution_ttl_s + reclaim_interval_s.
    heartbeat_interval_s: float = Field(5.0, gt=0)
    execution_ttl_s: int = Field(20, ge=10)
    reclaim_interval_s: float = Field(5.0, gt=0)
    # A worker's death is not its batch's fault (kill, OOM, a host going away): a reclaim does not spend a
    # retry. A batch whose worker died max_reclaims + 1 times is poison and ends in the failed registry.
    max_reclaims: int = Field(5, ge=0)
    # Jobs left "queued" in no queue and no registry (a worker took one and lost Redis before it started
    # it) are put back by a sweep every stranded_sweep_interval_s, once seen stranded for stranded_grace_s.
    stranded_sweep_interval_s: float = Field(60.0, gt=0)
    stranded_grace_s: float = Field(30.0, ge=0)
    redis_retry_max_s: float = Field(10.0, gt=0, description="longest wait between reconnect attempts")

    # Hugging Face classifiers (worker side): where and how they run
    device: str = Field("auto", description="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    dtype: str = Field("auto", description="auto (float32 on CPU, bfloat16/float16 on GPU) or explicit")
    sdpa: bool = Field(True, description="scaled-dot-product attention where the architecture has it")
    runtime: str = Field(
        "auto",
        pattern="^(auto|onnx-int8|onnx|torch|torch-int8)$",
        description="what runs the encoder models (default, accurate, extractive): onnx-int8 or onnx (an "
        "export from `chatlens models export`, no torch needed), torch, torch-int8 (torch's dynamic int8, "
        "also for the HF classifiers); auto = onnx-int8, else onnx where an export exists, else torch",
    )
    exports_dir: Path | None = Field(
        None, description="ONNX exports of the encoders; None = CHATLENS_MODELS_DIR/onnx"
    )

    # Zero-shot NLI classifier (queue classify-zeroshot)
    zeroshot_model: str = "facebook/bart-large-mnli"
    zeroshot_template: str = "The speaker of this message feels {}."
    zeroshot_verbs: dict[str, str] = Field(
        default_factory=lambda: {
            "Curious to dive deeper": "curious",
            "Neutral": "neutral",
            "Surprised": "surprised",
            "Happy": "happy",
            "Sad": "sad",
            "Disgusted": "disgusted",
            "Fearful": "afraid",
            "Angry": "angry",
        }
    )
    zeroshot_batch_size: int = Field(64, ge=1, description="(message, hypothesis) pairs per forward pass")

    # go_emotions classifier (queue classify-emotion); the mapping is the seed's
    emotion_model: str = "SamLowe/roberta-base-go_emotions"
    emotion_mapping: dict[str, str] = Field(
        default_factory=lambda: {
            "curiosity": "Curious to dive deeper",
            "joy": "Happy",
            "neutral": "Neutral",
            "surprise": "Surprised",
            "disgust": "Disgusted",
            "sadness": "Sad",
            "fear": "Fearful",
            "anger": "Angry",
        }
    )
    emotion_other_label: str | None = Field(
        None, description="let the other 20 labels compete under this label"
    )
    emotion_batch_size: int = Field(64, ge=1)

    # Fine-tuned classifier (queue classify-finetuned): a registry URI follows its alias between batches
    finetuned_model: str = Field(
        "models:/chatlens-minilm@champion", description="models:/NAME@ALIAS or a dir"
    )
    registry_poll_s: float = Field(30.0, ge=0, description="how often a worker re-reads the alias")

    # Conversation summaries (queues summarise-<backend>)
    summarise: bool = Field(True, description="the producer summarises conversations that got new messages")
    summary_backend: str = Field(
        "extractive", description="extractive (offline default), transformers, mlx or llamacpp"
    )
    summary_job_conversations: int = Field(
        16,
        ge=1,
        le=256,
        description="conversations per summary job for a batched backend (extractive); generative backends "
        "take one",
    )
    summary_model: str | None = Field(
        None,
        description="HF id, local dir, or for llamacpp a catalog name or GGUF file; None = the backend's "
        "default (extractive: bundled MiniLM, transformers: facebook/bart-large-cnn, mlx: "
        "mlx-community/Meta-Llama-3-8B-Instruct-4bit, llamacpp: qwen2.5-coder-1.5b-instruct)",
    )
    summary_sentences: int = Field(6, ge=1, le=20, description="most sentences an extractive summary keeps")
    summary_words: int | None = Field(
        45, ge=1, description="an extractive summary stops once it has this many words; None = no limit"
    )
    summary_max_new_tokens: int = Field(160, ge=8, description="bound on a generated summary's tokens")
    summary_temperature: float = Field(0.0, ge=0.0, description="0 = greedy decoding")
    summary_context_tokens: int | None = Field(
        None, ge=64, description="input budget per generation; None = the model's context less the output"
    )
    summary_allow_mlx_cpu: bool = Field(
        False, description="let the mlx backend run off Apple silicon, on mlx's CPU backend (tests)"
    )
    summary_threads: int = Field(
        1, ge=1, description="CPU threads of a llamacpp summary worker (see README: threads per worker)"
    )

    # Storage
    result_ttl_s: int = Field(30 * 24 * 3600, ge=60, description="lifetime of a run's keys in Redis")

    # Nightly evaluation
    eval_queue: str = "eval"
    nightly_cron: str = "0 2 * * *"
    nightly_interval_s: int | None = Field(None, ge=1, description="overrides nightly_cron (tests, demos)")
    reports_dir: Path = Path("reports")
    # A drop larger than these (absolute, tonight against the previous evaluation of the same run, or
    # of the champion's) is flagged as a regression in report.md, MLflow and `chatlens status`.
    regression_macro_f1_drop: float = Field(0.02, ge=0, description="absolute macro-F1 drop flagged")
    regression_accuracy_drop: float = Field(0.02, ge=0, description="absolute accuracy drop flagged")
    regression_recall_drop: float = Field(0.05, ge=0, description="absolute per-class recall drop flagged")
    regression_rouge_l_drop: float = Field(0.02, ge=0, description="absolute summary ROUGE-L drop flagged")
    trend_nights: int = Field(14, ge=2, description="evaluations per model in the nightly trend plot")

    # Operating it: metrics and logs
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="a worker serves Prometheus /metrics on this port; None = off"
    )
    log_format: str = Field("text", pattern="^(text|json)$", description="text, or json for log shippers")
    progress_log_s: float = Field(30.0, gt=0, description="how often a busy worker logs one progress line")

    # Reference summaries that `eval` scores a run's summaries against, where conversation ids match
    summary_references: Path | None = None

    @field_validator("redis_tls_ca_file", "redis_tls_cert_file", "redis_tls_key_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # CHATLENS_REDIS_TLS_CA_FILE= (empty) means no file, not the current directory.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_scheme(cls, value: str) -> str:
        check_redis_url(value)
        return value

    @property
    def exports_path(self) -> Path:
        return self.exports_dir or self.models_dir / "onnx"

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr(settings) and str(settings) end up in logs and tracebacks: never with the password.
        for name, value in super().__repr_args__():
            yield name, redact_url(value) if name in _URL_FIELDS and isinstance(value, str) else value

    @field_validator("classifiers", "retry_intervals_s", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # Also accept "a,b" from the environment, not only JSON lists.
        if isinstance(value, str):
            text = value.strip().removeprefix("[").removesuffix("]")
            return [part.strip().strip("\"'") for part in text.split(",") if part.strip()]
        return value


def check_redis_url(url: str) -> None:
    """Raise ValueError (one line, no secret) unless `url` has a scheme redis-py or chatlens serves."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in REDIS_URL_SCHEMES or (scheme.lower() != "fakeredis" and not rest):
        raise ValueError(
            f"{redact_url(url)!r} is not a Redis URL; write redis://host:6379/0 "
            "(or rediss:// for TLS, unix:///path/redis.sock, fakeredis:// for the embedded one)"
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except SettingsError as exc:
        # pydantic-settings' JSON decoding of a dict/list variable, before validation: name the field.
        name = str(exc).split('field "', 1)[-1].split('"', 1)[0] if 'field "' in str(exc) else ""
        field = "CHATLENS_" + name.upper() if name else "a CHATLENS_ variable"
        raise ChatlensError(
            f"{field}: not valid JSON; write a JSON object, e.g. "
            f'{field}=\'{{"joy": "Happy"}}\' (or unset it for the default)'
        ) from None
    except ValidationError as exc:
        problem = exc.errors()[0]
        name = str(problem["loc"][0]) if problem["loc"] else ""
        field = "CHATLENS_" + name.upper() if name else "a setting"
        shown = problem.get("input")
        if name in _URL_FIELDS and isinstance(shown, str):
            shown = redact_url(shown)
        message = f"{field}: {problem['msg']} (got {shown!r}); fix the variable"
        raise ChatlensError(message) from None
