"""`promote`: move a registered model's @champion alias to a candidate only if it is better.

Both versions are scored now, on the same evaluation set: the validation conversations of the evaluation
files (`chatlens.training.data`: with the training files, fraction and seed, the conversations training held
out). The figures are the trainers' and eval's (`chatlens.training.report.figures`). The candidate must beat
the champion's macro-F1 and may lose at most `max_accuracy_drop` accuracy. The comparison is logged to
MLflow whatever the outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import torch

from chatlens.backends.classifiers.finetuned import FineTunedClassifier
from chatlens.core.errors import ChatlensError
from chatlens.core.labels import LABELS
from chatlens.core.redact import redact_url
from chatlens.training.data import load_split
from chatlens.training.report import figures
from eval.tracking import quiet_mlflow

ALIAS = "champion"


@dataclass(frozen=True)
class Decision:
    promoted: bool
    reason: str
    candidate: str
    champion: str | None
    scores: dict[str, dict[str, float]]


def score_version(
    client: object, tracking_uri: str, name: str, version: str, texts: list[str], y: np.ndarray
) -> dict[str, float]:
    uri = client.get_model_version_download_uri(name, version)  # type: ignore[attr-defined]
    directory = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=tracking_uri))
    classifier = FineTunedClassifier(directory, version, torch.device("cpu"))
    predicted = [LABELS.index(o.label) for o in classifier.predict(texts)]
    return figures(y, np.array(predicted, dtype=np.int64))


def decide(
    candidate: str, champion: str | None, scores: dict[str, dict[str, float]], max_accuracy_drop: float
) -> tuple[bool, str]:
    if champion == candidate:
        return False, f"version {candidate} is already the champion"
    if champion is None:
        return True, "there is no champion yet"
    c, k = scores["candidate"], scores["champion"]
    if c["macro_f1"] <= k["macro_f1"]:
        return False, f"macro-F1 {c['macro_f1']:.4f} does not beat the champion's {k['macro_f1']:.4f}"
    if c["accuracy"] < k["accuracy"] - max_accuracy_drop:
        return False, (
            f"accuracy {c['accuracy']:.4f} is more than {max_accuracy_drop} below "
            f"the champion's {k['accuracy']:.4f}"
        )
    return True, f"macro-F1 {c['macro_f1']:.4f} > {k['macro_f1']:.4f}, accuracy within {max_accuracy_drop}"


def promote(
    name: str,
    version: str | None,
    tracking_uri: str,
    eval_files: Sequence[Path],
    val_frac: float = 0.15,
    seed: int = 0,
    max_accuracy_drop: float = 0.01,
) -> Decision:
    mlflow = quiet_mlflow()

    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except Exception as exc:
        where = redact_url(tracking_uri)
        raise ChatlensError(f"cannot read the registry at {where} ({type(exc).__name__})") from exc
    if not versions:
        raise ChatlensError(
            f"no registered model {name!r} at {redact_url(tracking_uri)}; `chatlens train finetune` first"
        )
    candidate = version or str(max(int(v.version) for v in versions))
    try:
        champion: str | None = str(client.get_model_version_by_alias(name, ALIAS).version)
    except Exception:
        champion = None
    split = load_split(eval_files, val_frac, seed)
    texts, y_held = [split.data.texts[i] for i in split.val], split.data.y[split.val]

    scores = {"candidate": score_version(client, tracking_uri, name, candidate, texts, y_held)}
    if champion is not None and champion != candidate:
        scores["champion"] = score_version(client, tracking_uri, name, champion, texts, y_held)
    promoted, reason = decide(candidate, champion, scores, max_accuracy_drop)
    if promoted:
        client.set_registered_model_alias(name, ALIAS, candidate)

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("chatlens-promotion")
    with mlflow.start_run(run_name=f"promote {name} v{candidate}"):
        mlflow.log_params({"model": name, "candidate": candidate, "champion": champion or "none",
                           "eval_files": [str(f) for f in eval_files], "eval_data_sha256": split.data.digest,
                           "validation_rows": len(split.val), "val_frac": val_frac, "seed": seed,
                           "max_accuracy_drop": max_accuracy_drop})  # fmt: skip
        for who, s in scores.items():
            mlflow.log_metrics({f"{who}_{k}": v for k, v in s.items()})
        mlflow.set_tags({"decision": "promoted" if promoted else "refused", "reason": reason})
    return Decision(promoted, reason, candidate, champion, scores)
