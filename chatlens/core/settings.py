"""The one configuration object, read from `CHATLENS_*` environment variables (and `.env`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from chatlens.core.errors import ChatlensError
from chatlens.core.redact import redact_url
from chatlens.core.sentinel import SCHEMES as SENTINEL_SCHEMES
from chatlens.core.sentinel import is_sentinel_url, parse_sentinel_url

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
# fakeredis:// is the embedded in-process server (see chatlens.core.connection.FAKE_URL).
REDIS_URL_SCHEMES = ("redis", "rediss", "unix", "fakeredis", *SENTINEL_SCHEMES)
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
        description="redis://[[user]:password@]host:port/db, rediss:// (TLS), unix:///path, fakeredis://, "
        "or redis+sentinel://[user:password@]host:port[,host:port...]/SERVICE[/DB] (rediss+sentinel:// for "
        "TLS): the primary that Redis Sentinel elects, followed through failovers",
    )
    redis_sentinel_password: SecretStr | None = Field(
        None,
        description="password of the sentinels themselves (their requirepass), if they have one; the "
        "sentinel URL's password is the primary's",
    )
    redis_failover_s: float = Field(
        30.0,
        gt=0,
        description="with a sentinel URL: how long a Redis command keeps retrying while the sentinels "
        "elect a new primary, before the command's one-line exit 3",
    )
    # Replica acknowledgement (chatlens/core/replication.py): WAIT after each producer batch and worker write
    redis_wait_replicas: int | None = Field(
        None,
        ge=0,
        description="replicas that must acknowledge each producer batch and worker result (Redis WAIT) "
        "before it counts as written; None = every replica the primary reports (INFO replication "
        "connected_slaves), which is none on a lone Redis; 0 = never wait",
    )
    redis_wait_timeout_ms: int = Field(
        2_000, ge=1, description="how long one WAIT waits for the replicas before the batch is sent again"
    )
    redis_wait_attempts: int = Field(
        5,
        ge=1,
        description="sends of one batch (or result) whose WAIT times out before the producer stops with "
        "exit 3 (a worker fails the job into its retries)",
    )
    # TLS for rediss:// URLs (handed to redis-py as ssl_ca_certs, ssl_certfile, ssl_keyfile).
    redis_tls_ca_file: Path | None = Field(None, description="CA bundle that signed the server's cert")
    redis_tls_cert_file: Path | None = Field(None, description="client certificate (tls-auth-clients)")
    redis_tls_key_file: Path | None = Field(None, description="private key of the client certificate")
    mlflow_tracking_uri: str = Field(
        # MLflow 3 refuses its file store, so the default is a local sqlite database.
        default="sqlite:///mlflow.db",
        validation_alias=AliasChoices("CHATLENS_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"),
        description="where MLflow runs and registered models go (MLflow 3 refuses its file store)",
    )
    mlflow_experiment: str = Field(
        "chatlens-eval", description="MLflow experiment of `chatlens eval` and the nightly evaluation"
    )

    # Producer
    batch_size: int = Field(64, ge=1, le=10_000, description="messages per micro-batch (one RQ job)")
    max_message_chars: int = Field(5_000, ge=1, description="longer messages are rejected, not truncated")
    classifiers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["default"],
        description="classifiers the producer fans every micro-batch out to (`a,b` or a JSON list)",
    )
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
    # their Redis memory stays small: the measured trade-off is in docs/guide/producing.md, "Back-pressure".
    max_queued: int = Field(2_000, ge=1, description="the producer waits while a queue holds this many jobs")
    redis_outage_s: float = Field(
        60.0,
        gt=0,
        description="the producer retries through a Redis outage this long, then stops (exit 3) with the "
        "command that resumes the run",
    )

    # Worker
    encoder_path: str | None = Field(None, description="HF id or local dir; None = bundled MiniLM")
    head_path: Path | None = Field(None, description="dir with head.safetensors/head.json; None = committed")
    inference_batch_size: int = Field(32, ge=1, description="forward-pass batch inside a micro-batch")
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
    job_timeout_s: int = Field(
        600,
        description="RQ job timeout of a classify or summary job: the running worker's setting, applied "
        "when the job starts (set it on the workers); `chatlens requeue` gives requeued jobs the current one",
    )
    retry_intervals_s: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [5, 30, 120],
        description="RQ `Retry` backoff of a failing job, one entry per retry (`5,30,120` or JSON)",
    )
    # A killed worker's job is recovered once its heartbeat key expires and a maintenance pass runs;
    # RQ's defaults (420 s + 600 s) would leave a batch stranded for up to 17 minutes.
    worker_ttl_s: int = Field(
        60, ge=20, description="lifetime of a worker's RQ heartbeat key (RQ's default is 420)"
    )
    maintenance_interval_s: int = Field(
        60, ge=10, description="how often a worker runs RQ's registry maintenance (RQ's default is 600)"
    )
    # A running job's execution is kept alive by a heartbeat thread; once it has been silent for
    # execution_ttl_s (its worker was killed or lost Redis), any worker re-enqueues the job at its next
    # reclaim pass: a dead worker's batch is started again within about execution_ttl_s + reclaim_interval_s.
    heartbeat_interval_s: float = Field(
        5.0, gt=0, description="how often a busy worker renews its running job's execution heartbeat"
    )
    execution_ttl_s: int = Field(
        20, ge=10, description="a running job's heartbeat TTL: silent this long, its worker is taken for dead"
    )
    reclaim_interval_s: float = Field(
        5.0, gt=0, description="how often (one worker at a time) dead workers' jobs are re-enqueued"
    )
    # A worker's death is not its batch's fault (kill, OOM, a host going away): a reclaim does not spend a
    # retry. A batch whose worker died max_reclaims + 1 times is poison and ends in the failed registry.
    max_reclaims: int = Field(
        5, ge=0, description="worker deaths a batch survives before it is failed as poison"
    )
    # Jobs left "queued" in no queue and no registry (a worker took one and lost Redis before it started
    # it) are put back by a sweep every stranded_sweep_interval_s, once seen stranded for stranded_grace_s.
    stranded_sweep_interval_s: float = Field(
        60.0, gt=0, description="how often (one worker at a time) the sweep looks for stranded jobs"
    )
    stranded_grace_s: float = Field(
        30.0, ge=0, description="how long a job must be seen stranded before the sweep re-enqueues it"
    )
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
    zeroshot_model: str = Field(
        "facebook/bart-large-mnli", description="NLI model of the zero-shot classifier: HF id or local dir"
    )
    zeroshot_template: str = Field(
        "The speaker of this message feels {}.",
        description="hypothesis per label; `{}` is the label's verbal form",
    )
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
        },
        description="label -> verbal form used in the hypothesis (JSON object)",
    )
    zeroshot_batch_size: int = Field(64, ge=1, description="(message, hypothesis) pairs per forward pass")

    # go_emotions classifier (queue classify-emotion); the mapping is the seed's
    emotion_model: str = Field(
        "SamLowe/roberta-base-go_emotions",
        description="go_emotions model of the emotion classifier: HF id or local dir",
    )
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
        },
        description="go_emotions label -> chatlens label (JSON object); the other labels are dropped",
    )
    emotion_other_label: str | None = Field(
        None, description="let the other 20 labels compete under this label"
    )
    emotion_batch_size: int = Field(
        64, ge=1, description="messages per forward pass of the emotion classifier"
    )

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
        1,
        ge=1,
        description="CPU threads of a llamacpp summary worker (docs/models/llamacpp.md: threads per worker)",
    )

    # Storage
    result_ttl_s: int = Field(30 * 24 * 3600, ge=60, description="lifetime of a run's keys in Redis")

    # Nightly evaluation
    eval_queue: str = Field("eval", description="queue of the nightly evaluation job")
    nightly_cron: str = Field(
        "0 2 * * *",
        description="when the nightly evaluation runs, in the scheduler's local time (run it with TZ=UTC)",
    )
    nightly_interval_s: int | None = Field(None, ge=1, description="overrides nightly_cron (tests, demos)")
    reports_dir: Path = Field(
        Path("reports"),
        description="where `chatlens eval` (by default) and the nightly job write their reports",
    )
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
    metrics_host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="address /metrics listens on (worker --metrics-port, status --serve): 127.0.0.1 keeps it "
        "on this host; 0.0.0.0 (as the compose file sets) lets Prometheus on another host scrape it",
    )
    log_format: str = Field("text", pattern="^(text|json)$", description="text, or json for log shippers")
    progress_log_s: float = Field(30.0, gt=0, description="how often a busy worker logs one progress line")

    # Reference summaries that `eval` scores a run's summaries against, where conversation ids match
    summary_references: Path | None = Field(
        None,
        description="reference summaries (JSON list) that `eval` scores a run's summaries against, where "
        "conversation ids match",
    )

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
    """Raise ValueError (one line, no secret) unless `url` has a scheme redis-py or chatlens serves
    (and, for a sentinel URL, its hosts, ports and service)."""
    if is_sentinel_url(url):
        try:
            parse_sentinel_url(url)
        except ValueError as exc:
            raise ValueError(f"{redact_url(url)!r}: {exc}") from None
        return
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in REDIS_URL_SCHEMES or (scheme.lower() != "fakeredis" and not rest):
        raise ValueError(
            f"{redact_url(url)!r} is not a Redis URL; write redis://host:6379/0 "
            "(or rediss:// for TLS, unix:///path/redis.sock, fakeredis:// for the embedded one, "
            "redis+sentinel://host:26379,host:26379/SERVICE for Redis Sentinel)"
        )


# Settings that were replaced: set, they are refused in one line rather than silently ignored.
RETIRED = {"CHATLENS_QUANTIZE_INT8": "CHATLENS_RUNTIME=torch-int8 (or onnx-int8: docs/guide/runtimes.md)"}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    for name, instead in RETIRED.items():
        if os.environ.get(name, "").strip():
            raise ChatlensError(f"{name} is no longer read; set {instead} and unset {name}")
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
