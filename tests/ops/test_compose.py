"""docker-compose.yml against the Compose specification's JSON schema, plus what the operator relies on.

There is no container engine here, so this is what can be checked without one. The schema is
compose/config/compose_spec.json from the docker-compose 1.29.2 wheel on PyPI (Apache-2.0), vendored
beside this test; `jsonschema` (the [dev] extra) validates against it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

from tests.helpers import ROOT

SCHEMA = Path(__file__).with_name("compose_spec.json")
COMPOSE = ROOT / "docker-compose.yml"


def load() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_follows_the_compose_spec() -> None:
    jsonschema.validate(load(), json.loads(SCHEMA.read_text()))


def test_every_service_has_a_healthcheck_and_workers_scale() -> None:
    services = load()["services"]
    for name, service in services.items():  # YAML merge keys (<<: *chatlens) are resolved by safe_load
        assert service["healthcheck"]["test"], name
    for name in ("worker", "summary-worker", "eval-worker"):
        assert "container_name" not in services[name] and "ports" not in services[name], name
    assert services["prometheus"]["profiles"] == ["monitoring"] == services["grafana"]["profiles"]


def test_redis_requires_the_password_every_service_uses() -> None:
    text = COMPOSE.read_text()
    compose = load()
    assert "--requirepass" in compose["services"]["redis"]["command"]
    assert compose["x-chatlens"]["environment"]["CHATLENS_REDIS_URL"].startswith("redis://:${REDIS_PASSWORD")
    example = dict(
        line.split("=", 1) for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line
    )
    for variable in set(re.findall(r"\$\{([A-Z_]+)[:?}]", text)) - {"CHATLENS_LOG_FORMAT"}:
        assert variable in example, f"{variable} is not documented in .env.example"


def test_prometheus_scrapes_the_metric_ports_and_grafana_has_its_dashboard() -> None:
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    assert jobs["chatlens-workers"]["dns_sd_configs"][0]["port"] == 9100
    assert jobs["chatlens-exporter"]["static_configs"][0]["targets"] == ["exporter:9200"]
    assert load()["x-chatlens"]["environment"]["CHATLENS_METRICS_PORT"] == "9100"
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "chatlens.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in (
        "chatlens_messages_classified_total",
        "chatlens_queue_depth",
        "chatlens_batch_seconds_bucket",
    ):
        assert metric in exprs


def test_classifier_and_summary_workers_run_the_slim_image_without_torch() -> None:
    services = load()["services"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+(?: AS (\S+))?$", dockerfile, flags=re.MULTILINE)
    assert {"full", "exports", "slim-worker"} <= set(stages) and stages[-1] == ""  # default: full
    for name in ("worker", "summary-worker"):
        assert services[name]["build"]["target"] == "slim-worker", name
    for name in ("eval-worker", "cron"):  # the evaluation and the scheduler keep the full image
        assert services[name]["build"]["target"] == "full", name
    slim = dockerfile.split("AS slim-worker", 1)[1].split("\nFROM ", 1)[0]
    assert "'.[onnx]'" in slim and "torch" not in slim.replace("without torch", "")
