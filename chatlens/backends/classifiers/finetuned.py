"""`FineTunedClassifier`: an encoder fine-tuned end to end with a linear head on its mean-pooled output,
and `RegistryClassifier`, which serves the MLflow model version an alias points to and follows the alias.

On disk a fine-tuned model is a directory: `encoder/` (transformers `save_pretrained`, with its
tokenizer), `head.safetensors` and `card.json` (labels, logit adjustment, how it was trained). No pickle.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoTokenizer, PreTrainedModel

from chatlens.backends.classifier import Output, top_outputs
from chatlens.backends.encoder import load_pretrained, mean_pool
from chatlens.backends.hf import batched_logits, resolve_device
from chatlens.core.errors import ChatlensError
from chatlens.core.settings import Settings

log = logging.getLogger(__name__)
CARD = "card.json"
HEAD = "head.safetensors"


class FineTunedModel(torch.nn.Module):
    def __init__(self, encoder: PreTrainedModel, n_labels: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.n_labels = n_labels
        self.encoder = encoder
        self.head = torch.nn.Sequential(
            torch.nn.Dropout(dropout), torch.nn.Linear(encoder.config.hidden_size, n_labels)
        )

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(mean_pool(hidden, attention_mask))


def predict_logits(model: FineTunedModel, ids: list[list[int]], pad: int, device: torch.device) -> np.ndarray:
    """Validation logits during training: eval mode, bf16 autocast on a GPU, large length-sorted batches."""
    model.eval()
    if not ids:
        return np.zeros((0, model.n_labels), dtype=np.float32)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        return batched_logits(model, ids, pad, device, 256).numpy()


def train_step(
    model: FineTunedModel,
    batch: dict[str, torch.Tensor],
    targets: torch.Tensor,
    loss_fn: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    device: torch.device,
) -> torch.Tensor:
    """One optimiser and schedule step on one padded batch, bf16 autocast on a GPU; the detached loss.

    The trainer and the fine-tuning sweep (scripts/finetune_sweep.py) both step through this, so the
    sweep measures the recipe that `chatlens train --finetune` runs."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logits = model(**batch).float()
    loss = loss_fn(logits, targets)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    schedule.step()
    return loss.detach()


def save_finetuned(model: FineTunedModel, tokenizer: object, card: dict, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    model.encoder.save_pretrained(directory / "encoder")
    tokenizer.save_pretrained(directory / "encoder")  # type: ignore[attr-defined]
    save_file(
        {k: v.detach().contiguous().float() for k, v in model.head.state_dict().items()},
        str(directory / HEAD),
    )
    (directory / CARD).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")


def finetuned_version(directory: Path) -> str:
    """The directory and a hash of its head and card: a new training writes both, so another model in
    the same directory is another version (the encoder's weights are too large to hash at every start)."""
    digest = hashlib.sha256((directory / HEAD).read_bytes() + (directory / CARD).read_bytes())
    return f"{directory}+head-{digest.hexdigest()[:12]}"


class FineTunedClassifier:
    def __init__(
        self, directory: Path, version: str | None, device: torch.device, batch_size: int = 64
    ) -> None:
        """`version` None: the directory and its head's hash (`finetuned_version`)."""
        if not (directory / CARD).exists():
            raise ChatlensError(
                f"{directory}: not a fine-tuned chatlens model (no {CARD}); run `chatlens train --finetune`"
            )
        self.card = json.loads((directory / CARD).read_text(encoding="utf-8"))
        self.labels: list[str] = self.card["labels"]
        self.tokenizer = load_pretrained(str(directory / "encoder"), AutoTokenizer)
        encoder = load_pretrained(str(directory / "encoder"), AutoModel, attn_implementation="sdpa")
        self.model = FineTunedModel(encoder, len(self.labels))
        self.model.head.load_state_dict(load_file(str(directory / HEAD)))
        self.model.to(device).eval()
        self.adjustment = torch.tensor(self.card["logit_adjustment"], dtype=torch.float32)
        self.max_length = int(self.card["max_length"])
        self.version = version or finetuned_version(directory)
        self.device, self.batch_size = device, batch_size

    @torch.inference_mode()
    def logits(self, texts: list[str]) -> torch.Tensor:
        if not texts:
            return torch.zeros((0, len(self.labels)))
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        pad = self.tokenizer.pad_token_id
        return batched_logits(self.model, ids, pad, self.device, self.batch_size)

    def predict(self, texts: list[str]) -> list[Output]:
        return top_outputs(torch.softmax(self.logits(texts) + self.adjustment, dim=-1), self.labels)


def parse_model_uri(uri: str) -> tuple[str, str]:
    """models:/NAME@ALIAS or models:/NAME/VERSION -> (name, alias or version)."""
    rest = uri.removeprefix("models:/")
    if "@" in rest:
        name, ref = rest.split("@", 1)
    elif "/" in rest:
        name, ref = rest.rsplit("/", 1)
    else:
        raise ChatlensError(f"{uri!r}: use models:/NAME@ALIAS or models:/NAME/VERSION")
    return name, ref


class RegistryClassifier:
    """Serves `models:/NAME@ALIAS`; between batches, follows the alias to a new version without a restart."""

    def __init__(
        self, uri: str, tracking_uri: str, device: torch.device, batch_size: int, poll_s: float
    ) -> None:
        import mlflow

        self.client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.tracking_uri = tracking_uri
        self.model_name, self.ref = parse_model_uri(uri)
        self.device, self.batch_size, self.poll_s = device, batch_size, poll_s
        self.current: FineTunedClassifier | None = None
        self._checked = 0.0
        self.refresh(force=True)

    @property
    def version(self) -> str:
        assert self.current is not None
        return self.current.version

    def _resolve(self) -> str:
        try:
            if self.ref.isdigit():
                return self.ref
            return str(self.client.get_model_version_by_alias(self.model_name, self.ref).version)
        except Exception as exc:  # the registry's errors differ by backend
            raise ChatlensError(
                f"models:/{self.model_name}@{self.ref} is not in the registry at {self.tracking_uri} "
                f"({type(exc).__name__}); train and register it with `chatlens train --finetune --register`"
            ) from exc

    def refresh(self, force: bool = False) -> None:
        """Load the version the alias points to, if it moved. Called by the job before each batch."""
        now = time.monotonic()
        if not force and now - self._checked < self.poll_s:
            return
        self._checked = now
        version = self._resolve()
        label = f"models:/{self.model_name}/{version}"
        if self.current is not None and self.current.version == label:
            return
        import mlflow

        uri = self.client.get_model_version_download_uri(self.model_name, version)
        directory = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=self.tracking_uri)
        )
        self.current = FineTunedClassifier(directory, label, self.device, self.batch_size)
        log.warning("serving %s (alias %s)", label, self.ref)

    def predict(self, texts: list[str]) -> list[Output]:
        assert self.current is not None
        return self.current.predict(texts)


def build(settings: Settings) -> FineTunedClassifier | RegistryClassifier:
    device = resolve_device(settings.device)
    if settings.finetuned_model.startswith("models:/"):
        return RegistryClassifier(
            settings.finetuned_model, settings.mlflow_tracking_uri, device, settings.inference_batch_size,
            settings.registry_poll_s,
        )  # fmt: skip
    return FineTunedClassifier(Path(settings.finetuned_model), None, device, settings.inference_batch_size)
