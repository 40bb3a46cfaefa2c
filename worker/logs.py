"""A worker's logs: one progress line per interval at INFO instead of RQ's four lines per job, plain
text or JSON (CHATLENS_LOG_FORMAT=json) for log shippers, and never the Redis password.

RQ 3.0 logs every job at INFO on `rq.worker` ("queue: job id", "Job OK", "Successfully completed ...",
"result is kept for ...") and offers no switch for most of them; `log_result_lifespan=False` and
`log_job_description=False` (set on ChatlensWorker) drop one line and the job's arguments, and the
filter below turns the rest into DEBUG records. `--log-level DEBUG` brings them all back.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from chatlens.core.redact import redact_text

# The message templates of RQ 3.0's per-job INFO lines (rq/worker/base.py).
PER_JOB_TEMPLATES = frozenset(
    {
        "Worker %s: %s: %s (%s)",  # dequeued (with description) and "Job OK"
        "Worker %s: %s: %s",  # dequeued (without description)
        "Successfully completed %s job in %ss on worker %s",
        "Successfully completed job %s in %ss on worker %s",
        "Worker %s: job %s result is kept for %s seconds",
        "Worker %s: job %s result discarded immediately",
    }
)


class PerJobToDebug(logging.Filter):
    """Demote RQ's per-job INFO records to DEBUG, and drop them unless the logger is set to DEBUG."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.INFO and record.msg in PER_JOB_TEMPLATES:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self.logger.isEnabledFor(logging.DEBUG)
        return True


class RedactingFormatter(logging.Formatter):
    def __init__(self, secret_url: str | None, fmt: str | None = None) -> None:
        super().__init__(fmt, datefmt="%Y-%m-%dT%H:%M:%S")
        self.secret_url = secret_url

    def redact(self, text: str) -> str:
        return redact_text(text, self.secret_url) if self.secret_url else text

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


class JsonFormatter(RedactingFormatter):
    """One JSON object per line: ts, level, logger, message (and exc_info when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(record.getMessage()),
        }
        for key in ("worker", "batches", "messages", "errors", "models", "summaries", "messages_per_s"):
            if hasattr(record, key):
                document[key] = getattr(record, key)
        if record.exc_info:
            document["exc_info"] = self.redact(self.formatException(record.exc_info))
        return json.dumps(document)


def configure_logging(level: str, log_format: str, secret_url: str | None = None) -> None:
    """One handler on the root logger (stdout) for chatlens's and RQ's loggers; RQ then adds none."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        JsonFormatter(secret_url)
        if log_format == "json"
        else RedactingFormatter(secret_url, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "chatlens", False):
            root.removeHandler(old)
    handler.chatlens = True  # type: ignore[attr-defined]  # marks ours, so a second call replaces it
    root.addHandler(handler)
    root.setLevel(level)
    rq_worker = logging.getLogger("rq.worker")
    rq_worker.setLevel(level)
    rq_worker.propagate = True
    if not any(isinstance(f, PerJobToDebug) for f in rq_worker.filters):
        rq_worker.addFilter(PerJobToDebug(rq_worker))
