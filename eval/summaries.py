"""Evaluating conversation summaries against reference summaries.

Two entry points, one output shape (`metrics.json` → `"summaries": {backend: {rouge1, rouge2, rougeL,
rougeL_ci_low, rougeL_ci_high, words, sentences, compression, seconds_per_conversation}}`):
- `evaluate_summaries_file`: summarise every conversation of a reference file with each available
  backend, in this process, and score them (`chatlens eval-summaries`);
- `score_run_summaries`: score the summaries a run's workers wrote, where a reference exists for the
  conversation (`chatlens eval`).
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from chatlens.backends.summariser import SUMMARISERS
from chatlens.core.errors import ChatlensError
from chatlens.core.schemas import Message
from chatlens.core.settings import Settings
from chatlens.core.store import RunStore
from eval.summary_metrics import score_summaries

Progress = Callable[[str, int, int], None]


class ReferenceSummary(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    conversation_id: str
    message: str  # the conversation's turns, joined
    summary: str

    @field_validator("conversation_id", mode="before")
    @classmethod
    def _id_as_text(cls, value: object) -> object:
        # Ids are numbers in the seed's files and strings in CSVs; they are matched as text.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def load_references(path: Path) -> list[ReferenceSummary]:
    """The JSON list of `{conversation_id, message, summary}`, or one line saying what is wrong."""
    if not path.is_file():
        raise ChatlensError(f"{path}: no such file; check the path")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ChatlensError(f"{path}: not a UTF-8 JSON file ({exc}); expected a JSON list") from None
    if not isinstance(data, list) or not data:
        raise ChatlensError(
            f"{path}: expected a non-empty JSON list of {{conversation_id, message, summary}}"
        )
    items: list[ReferenceSummary] = []
    for i, raw in enumerate(data):
        try:
            items.append(ReferenceSummary.model_validate(raw))
        except ValidationError as exc:
            problem = exc.errors()[0]
            field = ".".join(str(p) for p in problem["loc"]) or "item"
            raise ChatlensError(
                f"{path}: item {i}: {field}: {problem['msg']}; each item needs string fields "
                "conversation_id, message and summary"
            ) from None
    return items


def evaluate_summaries_file(
    path: Path,
    out_dir: Path,
    settings: Settings,
    backends: list[str] | None = None,
    limit: int | None = None,
    track: bool = True,
    progress: Progress | None = None,
) -> dict:
    items = load_references(path)[:limit] if limit else load_references(path)
    sources = [item.message for item in items]
    references = [item.summary for item in items]
    scored: dict[str, dict] = {}
    models: dict[str, str] = {}
    skipped: dict[str, str] = {}
    outputs: dict[str, list[str]] = {}
    for backend in backends or list(SUMMARISERS.names()):
        try:
            summariser = SUMMARISERS.build(backend, settings)
        except ChatlensError as exc:
            # "Every available backend": one that cannot load here (no weights, not Apple silicon) is
            # reported as skipped, with the reason, rather than failing the others.
            skipped[backend] = str(exc)
            continue
        texts: list[str] = []
        started = time.perf_counter()
        for i, item in enumerate(items):
            texts.append(summariser.summarise([item.message]).text)
            if progress:
                progress(backend, i + 1, len(items))
        seconds = time.perf_counter() - started
        scored[backend] = score_summaries(texts, references, sources) | {
            "seconds_per_conversation": round(seconds / len(items), 4)
        }
        models[backend] = summariser.model_id
        outputs[backend] = texts
    if not scored:
        raise ChatlensError(
            "no summary backend could run here: " + "; ".join(f"{b}: {why}" for b, why in skipped.items())
        )
    document = {
        "file": str(path),
        "conversations": len(items),
        "summaries": scored,
        "models": models,
        "skipped": skipped,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "summaries.jsonl").open("w", encoding="utf-8") as handle:
        for i, item in enumerate(items):
            record = {"conversation_id": item.conversation_id, "reference": item.summary}
            record |= {backend: texts[i] for backend, texts in outputs.items()}
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    _write(out_dir, document, f"summaries of `{path.name}`")
    if track:
        from eval.tracking import log_summary_evaluation

        document["mlflow_run_ids"] = log_summary_evaluation(
            settings.mlflow_tracking_uri, "chatlens-summaries", path.name, scored, out_dir, models, len(items)
        )
        _write(out_dir, document, f"summaries of `{path.name}`")
    return document


def score_run_summaries(
    store: RunStore, run: str, messages: dict[str, Message], references_path: Path | None
) -> dict:
    """{backend: metrics} for the run's summaries that have a reference; {} when none do. `messages` are
    the run's, as `store.messages(run)` gives them: the sources the compression is measured against."""
    if references_path is None or not references_path.is_file():
        return {}
    references = {item.conversation_id: item.summary for item in load_references(references_path)}
    matched = {cid: s for cid, s in store.summaries(run).items() if cid in references}
    if not matched:
        return {}
    turns: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for message in messages.values():
        if message.conversation_id in matched:
            turns[message.conversation_id].append((message.position, message.text))
    by_backend: dict[str, list[str]] = defaultdict(list)
    for cid, summary in matched.items():
        by_backend[summary.backend].append(cid)
    scored: dict[str, dict] = {}
    for backend, cids in sorted(by_backend.items()):
        scored[backend] = score_summaries(
            [matched[cid].text for cid in cids],
            [references[cid] for cid in cids],
            [" ".join(text for _, text in sorted(turns[cid])) for cid in cids],
        ) | {
            "seconds_per_conversation": round(sum(matched[c].latency_ms for c in cids) / 1000 / len(cids), 4),
            "conversations": len(cids),
        }
    return scored


def summary_table(scored: dict[str, dict]) -> list[str]:
    lines = [
        "| backend | ROUGE-1 | ROUGE-2 | ROUGE-L | ROUGE-L 95% CI | words | sentences | compression "
        "| s/conversation |",
        "| --- | ---: | ---: | ---: | :---: | ---: | ---: | ---: | ---: |",
    ]
    for backend, m in scored.items():
        lines.append(
            f"| {backend} | {m['rouge1']:.3f} | {m['rouge2']:.3f} | {m['rougeL']:.3f} | "
            f"{m['rougeL_ci_low']:.3f}-{m['rougeL_ci_high']:.3f} | {m['words']:.1f} | "
            f"{m['sentences']:.1f} | {m['compression']:.1f} | {m['seconds_per_conversation']:.3f} |"
        )
    return lines


def _write(out_dir: Path, document: dict, title: str) -> None:
    (out_dir / "metrics.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    lines = [f"# chatlens evaluation: {title}", "", f"{document['conversations']} conversations.", ""]
    lines += summary_table(document["summaries"])
    lines += [
        "",
        "ROUGE F-measures (rouge-score, stemmed) against the reference summaries; the interval is a 95% "
        "bootstrap over conversations.",
        "",
    ]
    if document["models"]:
        lines += ["Models: " + ", ".join(f"{b} = `{m}`" for b, m in document["models"].items()), ""]
    for backend, why in document["skipped"].items():
        lines.append(f"- skipped {backend}: {why}")
    lines += ["", "Per-conversation outputs: `summaries.jsonl`.", ""]
    (out_dir / "report.md").write_text("\n".join(lines), encoding="utf-8")
