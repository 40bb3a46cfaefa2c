"""RQ cron configuration: evaluate the latest run every night.

Run it with `chatlens cron` (not plain `rq cron`, whose jobs would be pickled: our workers only
accept JSON). Schedule: CHATLENS_NIGHTLY_CRON (default "0 2 * * *"; rq reads cron fields in the
scheduler's local time, so run it with TZ=UTC), or CHATLENS_NIGHTLY_INTERVAL_S for a fixed interval.
Served by `chatlens worker --queue eval`.
"""

from rq import cron

from chatlens.settings import get_settings
from eval.jobs import evaluate_latest_run

_settings = get_settings()
_schedule: dict = (
    {"interval": _settings.nightly_interval_s}
    if _settings.nightly_interval_s
    else {"cron": _settings.nightly_cron}
)

cron.register(
    evaluate_latest_run,
    queue_name=_settings.eval_queue,
    job_timeout=3600,
    name="chatlens-nightly-eval",
    **_schedule,
)
