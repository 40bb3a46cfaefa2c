"""Evaluating conversation summaries against reference summaries.

Two entry points, one output shape (`metrics.json` → `"summaries": {backend: {rouge1, rouge2, rougeL,
rougeL_ci_low, rougeL_ci_high, words, sentences, compression, seconds_per_conversation}}`):
- `evaluate_summaries_file`: summarise every conversation of a reference file with each available
  backend, in this process, and score them (`chatlens eval-summaries`); summaries written elsewhere
  (`--compare NAME=FILE`) are scored beside them (`"compared"`), and every two of these systems are
  compared conversation by conversation (`"paired"`: the ROUGE-L difference and its 95% interval);
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
from eval.summary_metrics import paired_rouge_l, score_summaries

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


class WrittenSummary(ReferenceSummary):
    """A summary of a reference conversation written elsewhere (e.g. the seed's BART outputs)."""

    message: str = ""


def load_references(path: Path) -> list[ReferenceSummary]:
    """The JSON list of `{conversation_id, message, summary}`, or one line saying what is wrong."""
    return _load_list(path, ReferenceSummary, "conversation_id, message and summary")


def load_written(path: Path, conversation_ids: list[str]) -> list[str]:
    """The summaries of a JSON list of `{conversation_id, summary}` for `conversation_ids`, in that order;
    one line if a conversation has none."""
    written = {
        item.conversation_id: item.summary
        for item in _load_list(path, WrittenSummary, "conversation_id and summary")
    }
    missing = [cid for cid in conversation_ids if cid not in written]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ChatlensError(
            f"{path}: no summary for conversation {shown}; a compared file needs one for every reference"
        )
    return [written[cid] for cid in conversation_ids]


def _load_list(path: Path, model: type[ReferenceSummary], fields: str) -> list[ReferenceSummary]:
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
            items.append(model.model_validate(raw))
        except ValidationError as exc:
            problem = exc.errors()[0]
            field = ".".join(str(p) for p in problem["loc"]) or "item"
            raise ChatlensError(
                f"{path}: item {i}: {field}: {problem['msg']}; each item needs string fields {fields}"
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
    compare: dict[str, Path] | None = None,
) -> dict:
    items = load_references(path)[:limit] if limit else load_references(path)
    sources = [item.message for item in items]
    references = [item.summary for item in items]
    chosen = backends or list(SUMMARISERS.names())
    compared_outputs: dict[str, list[str]] = {}
    for name, file in (compare or {}).items():
        if name in SUMMARISERS.names():
            raise ChatlensError(
                f"--compare {name}={file}: {name!r} is a backend's name; give the file another"
            )
        compared_outputs[name] = load_written(file, [item.conversation_id for item in items])
    scored: dict[str, dict] = {}
    models: dict[str, str] = {}
    skipped: dict[str, str] = {}
    outputs: dict[str, list[str]] = {}
    for backend in chosen:
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
    compared = {
        name: score_summaries(texts, references, sources) | {"file": str((compare or {})[name])}
        for name, texts in compared_outputs.items()
    }
    outputs |= compared_outputs
    document = {
        "file": str(path),
        "conversations": len(items),
        "summaries": scored,
        "compared": compared,
        "paired": paired_rouge_l(outputs, references),
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


def summary_table(scored: dict[str, dict], compared: dict[str, dict] | None = None) -> list[str]:
    """The scores as a Markdown table; summaries written elsewhere in italics, with no time of ours."""
    lines = [
        "| backend | ROUGE-1 | ROUGE-2 | ROUGE-L | ROUGE-L 95% CI | words | sentences | compression "
        "| s/conversation |",
        "| --- | ---: | ---: | ---: | :---: | ---: | ---: | ---: | ---: |",
    ]
    rows = [(backend, m) for backend, m in scored.items()]
    rows += [(f"*{name}* ({Path(m['file']).name})", m) for name, m in (compared or {}).items()]
    for name, m in rows:
        seconds = m.get("seconds_per_conversation")
        lines.append(
            f"| {name} | {m['rouge1']:.3f} | {m['rouge2']:.3f} | {m['rougeL']:.3f} | "
            f"{m['rougeL_ci_low']:.3f}-{m['rougeL_ci_high']:.3f} | {m['words']:.1f} | "
            f"{m['sentences']:.1f} | {m['compression']:.1f} | {'' if seconds is None else f'{seconds:.3f}'} |"
        )
    return lines


def paired_lines(paired: list[dict]) -> list[str]:
    """One line per pair: `A - B: ROUGE-L +difference (95% interval +low to +high)`."""
    return [
        f"{p['first']} - {p['second']}: ROUGE-L {p['rougeL_difference']:+.3f} "
        f"(95% interval {p['ci_low']:+.3f} to {p['ci_high']:+.3f})"
        for p in paired
    ]


def _write(out_dir: Path, document: dict, title: str) -> None:
    (out_dir / "metrics.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    lines = [f"# chatlens evaluation: {title}", "", f"{document['conversations']} conversations.", ""]
    lines += summary_table(document["summaries"], document.get("compared"))
    lines += [
        "",
        "ROUGE F-measures (rouge-score, stemmed) against the reference summaries; the interval is a 95% "
        "bootstrap over conversations.",
        "",
    ]
    if document.get("paired"):
        lines += [
            "Paired on the same conversations (mean per-conversation ROUGE-L difference, 95% paired "
            "bootstrap interval; an interval that excludes 0 is a difference beyond the noise):",
            "",
            *(f"- {line}" for line in paired_lines(document["paired"])),
            "",
        ]
    if document["models"]:
        lines += ["Models: " + ", ".join(f"{b} = `{m}`" for b, m in document["models"].items()), ""]
    for backend, why in document["skipped"].items():
        lines.append(f"- skipped {backend}: {why}")
    lines += ["", "Per-conversation outputs: `summaries.jsonl`.", ""]
    (out_dir / "report.md").write_text("\n".join(lines), encoding="utf-8")
