"""The configuration reference, generated from the pydantic `Settings` object: every field's environment
variable, type, constraints, default and description, grouped under the section comments of
chatlens/core/settings.py, with the comment written directly above a field after its description.
Every field must carry `Field(description=...)`: the page refuses to build without one."""

from __future__ import annotations

import ast
import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from chatlens.core.settings import Settings

ENV_PREFIX = "CHATLENS_"
_LONG_DEFAULT = 34  # characters; a longer default is shown below the table, not in a cell


class MissingDescription(ValueError):
    """A setting without a description: the configuration page would have nothing to say about it."""


def undescribed(settings: type[Settings] = Settings) -> list[str]:
    """The environment variables of the fields whose description is missing or blank."""
    return [
        env_names(name, info)[0]
        for name, info in settings.model_fields.items()
        if not (info.description or "").strip()
    ]


@dataclass
class Section:
    title: str
    fields: list[str] = field(default_factory=list)


def env_names(name: str, info: FieldInfo) -> list[str]:
    """The environment variables a field reads: its CHATLENS_ name, or its validation aliases."""
    alias = info.validation_alias
    choices = getattr(alias, "choices", None)
    if choices:
        return [str(choice) for choice in choices]
    return [ENV_PREFIX + name.upper()]


def all_env_names() -> set[str]:
    return {env for name, info in Settings.model_fields.items() for env in env_names(name, info)}


def _comment_text(lines: list[str]) -> str:
    return " ".join(line.strip().removeprefix("#").strip() for line in lines).strip()


def sections_and_notes(settings: type[Settings] = Settings) -> tuple[list[Section], dict[str, str]]:
    """Fields in source order under their section comment (a comment after a blank line starts a section),
    and the comment directly above each field (its note)."""
    source = inspect.getsource(settings)
    lines = source.splitlines()
    tree = ast.parse(source)
    body = tree.body[0]
    assert isinstance(body, ast.ClassDef)
    sections = [Section("Connection")]
    notes: dict[str, str] = {}
    for node in body.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        name = node.target.id
        if name not in settings.model_fields:
            continue
        above: list[str] = []
        index = node.lineno - 2
        while index >= 0 and lines[index].strip().startswith("#"):
            above.insert(0, lines[index])
            index -= 1
        starts_section = bool(above) and index >= 0 and not lines[index].strip()
        if starts_section:
            title = re.split(r"[:;] ", _comment_text(above[:1]), maxsplit=1)[0].rstrip(".")
            if len(title) > 40:  # a sentence, not a heading: "Reference summaries that `eval` scores ..."
                title = re.split(r" (?:that|which|where|when) |, ", title, maxsplit=1)[0]
            if "_" not in title.split(" ")[0]:
                title = title[:1].upper() + title[1:]
            sections.append(Section(title.replace("<", "&lt;").replace(">", "&gt;")))
            above = above[1:]
        if above:
            notes[name] = _comment_text(above)
        sections[-1].fields.append(name)
    listed = {name for section in sections for name in section.fields}
    missing = [name for name in settings.model_fields if name not in listed]
    if missing:  # a field the source walk did not see (declared some other way): still documented
        sections.append(Section("Other", missing))
    return [section for section in sections if section.fields], notes


def type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    text = str(annotation)
    return re.sub(r"\b(typing|pathlib|collections\.abc)\.", "", text)


def constraints(info: FieldInfo) -> str:
    signs = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    parts = []
    for item in info.metadata:
        for attr, sign in signs.items():
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{sign} {value:,}" if isinstance(value, int) else f"{sign} {value}")
        pattern = getattr(item, "pattern", None)
        if pattern:
            parts.append(f"matches `{pattern}`")
    return ", ".join(parts)


def default_value(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]
    return None if info.default is PydanticUndefined else info.default


def default_text(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, Path):
        home = str(Path.home())
        text = str(value)
        # the per-user default differs from host to host: show it the way it is computed
        return "~" + text[len(home) :] if text.startswith(home + "/") else text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int):
        return f"{value}"
    return str(value)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(settings: type[Settings] = Settings) -> str:
    missing = undescribed(settings)
    if missing:
        raise MissingDescription(
            f"chatlens/core/settings.py: {', '.join(missing)} has no description; give the field "
            "Field(description=...), which the configuration page shows"
        )
    sections, notes = sections_and_notes(settings)
    fields = settings.model_fields
    out: list[str] = []
    long_defaults: list[tuple[str, str]] = []
    for section in sections:
        out += [f"## {section.title}", "", "| variable and type | default | what it does |"]
        out += ["| --- | --- | --- |"]
        for name in section.fields:
            info = fields[name]
            envs = " or ".join(f"`{env}`" for env in env_names(name, info))
            kind = f"`{type_name(info.annotation)}`"
            limit = constraints(info)
            if limit:
                kind += f" ({limit})"
            shown = default_text(default_value(info))
            if len(shown) > _LONG_DEFAULT:
                long_defaults.append((env_names(name, info)[0], shown))
                default_cell = "see [below](#long-defaults)"
            else:
                default_cell = f"`{_cell(shown)}`" if shown != "unset" else "unset"
            text = str(info.description)
            if name in notes:
                text += f". {notes[name]}"
            anchor = f'<span id="{env_names(name, info)[0]}"></span>'  # link as configuration.md#CHATLENS_X
            out.append(f"| {anchor}{envs}<br>{kind} | {default_cell} | {_cell(text)} |")
        out.append("")
    if long_defaults:
        out += ["## Long defaults {#long-defaults}", ""]
        for env, shown in long_defaults:
            out += [f"`{env}`:", "", "```json", shown, "```", ""]
    return "\n".join(out)
