"""The `chatlens` command tree, read from the typer app: the CLI reference page is written from it at build
time, and the docs drift test checks every `chatlens ...` command line in the docs against it.

typer 0.29 carries its own copy of click's command classes (typer._click), so the tree is read by duck
typing (commands, params, opts), not through click's or typer's private class names."""

from __future__ import annotations

import enum
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer.main

from chatlens.cli.app import app


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]  # ("train", "head") for `chatlens train head`
    command: Any  # typer's click-like Command (a group has list_commands)

    @property
    def name(self) -> str:
        return " ".join(("chatlens", *self.path))

    def option_names(self) -> set[str]:
        names = {"--help"}
        for param in self.command.params:
            if _is_option(param):
                names.update(param.opts)
                names.update(param.secondary_opts)
        return names

    @property
    def is_group(self) -> bool:
        return hasattr(self.command, "list_commands")

    def subcommands(self) -> dict[str, Any]:
        if not self.is_group:
            return {}
        ctx = _context(self.command, self.name)
        found = {name: self.command.get_command(ctx, name) for name in self.command.list_commands(ctx)}
        return {name: sub for name, sub in found.items() if sub is not None and not sub.hidden}


def _is_option(param: Any) -> bool:
    return getattr(param, "param_type_name", "") == "option"


def _context(command: Any, name: str) -> Any:
    return command.context_class(command, info_name=name)


def root() -> Any:
    return typer.main.get_command(app)


def walk(command: Any = None, path: tuple[str, ...] = ()) -> Iterator[Command]:
    """Every command, depth first, in the order `chatlens --help` lists them."""
    entry = Command(path, command if command is not None else root())
    yield entry
    for name, sub in entry.subcommands().items():
        yield from walk(sub, (*path, name))


def find(path: list[str]) -> tuple[Command, list[str]]:
    """The deepest command named by the leading words of `path`, and the words left over."""
    entry = Command((), root())
    words = list(path)
    while words and words[0] in entry.subcommands():
        entry = Command((*entry.path, words[0]), entry.subcommands()[words[0]])
        words.pop(0)
    return entry, words


def _plain(text: str | None) -> str:
    """typer help text as Markdown: no rich markup escapes, no [default: ...] (a column of its own)."""
    text = (text or "").replace("\\[", "[")
    text = re.sub(r"\s*\[default: [^\]]*\]", "", text)
    return _escape(" ".join(text.split()))


def _escape(text: str) -> str:
    """Markdown would take `<run>` in plain text for an HTML tag and drop it."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _default(param: Any) -> str:
    if _is_option(param) and param.is_flag and not param.secondary_opts:
        return "off" if not param.default else "on"
    if param.required:
        return "required"
    default = param.default
    if default is None or default == () or default == []:
        help_text = getattr(param, "help", None) or ""
        found = re.search(r"\\?\[default: ([^\]]*)\]", help_text)
        if found:
            return _escape(found.group(1))
        # "flush a partial batch after this long [300]": the default comes from the matching setting
        from_setting = re.search(r"\[([^\]]+)\]\s*$", help_text)
        return f"{_escape(from_setting.group(1))} (setting)" if from_setting else "-"
    if isinstance(default, bool) and _is_option(param) and param.secondary_opts:
        return f"`{param.opts[0] if default else param.secondary_opts[0]}`"
    if isinstance(default, enum.Enum):
        default = default.value
    if isinstance(default, (list, tuple)):
        return " ".join(f"`{item}`" for item in default)
    return f"`{default}`"


def _annotation_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return " or ".join(_annotation_name(arg) for arg in members)
    if origin in (list, tuple, set):
        args = typing.get_args(annotation)
        return _annotation_name(args[0]) if args else "text"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(f"`{member.value}`" for member in annotation)
    if annotation is Path or (isinstance(annotation, type) and issubclass(annotation, Path)):
        return "path"
    if annotation is str:
        return "text"
    return getattr(annotation, "__name__", str(annotation))


def _type(param: Any) -> str:
    if _is_option(param) and param.is_flag:
        return "flag"
    descriptor = getattr(param, "type_descriptor", None)
    text = _annotation_name(descriptor.annotation) if descriptor is not None else "text"
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is not None and high is not None:
        text += f", {low} to {high}"
    elif low is not None:
        text += f", ≥ {low}"
    elif high is not None:
        text += f", ≤ {high}"
    if param.multiple or param.nargs == -1:
        text += ", repeatable"
    return text


def _usage(entry: Command) -> str:
    ctx = _context(entry.command, entry.name)
    pieces = " ".join(entry.command.collect_usage_pieces(ctx))
    pieces = re.sub(r"\{(\w+)\}", lambda m: m.group(1).upper(), pieces)  # typer's {file}: FILE
    return f"{entry.name} {pieces}".strip()


def markdown() -> str:
    out: list[str] = []
    for entry in walk():
        if not entry.path:
            continue
        level = "#" * (1 + len(entry.path))
        out += [f"{level} `{entry.name}`", ""]
        help_text = entry.command.help or entry.command.short_help or ""
        paragraphs = [_plain(block) for block in help_text.replace("\\b", "").split("\n\n")]
        out += [*(p for p in paragraphs if p), "", "```", _usage(entry), "```", ""]
        if entry.is_group:
            continue
        rows = []
        for param in entry.command.params:
            if param.param_type_name == "argument":
                names = f"`{(param.metavar or param.name or '').upper()}`"
                help_text = _plain(getattr(param, "help", None))
            elif _is_option(param):
                if param.hidden:
                    continue
                names = ", ".join(f"`{opt}`" for opt in (*param.opts, *param.secondary_opts))
                help_text = _plain(param.help)
            else:
                continue
            cell = help_text.replace("|", "\\|")
            rows.append(f"| {names} | {_type(param)} | {_default(param)} | {cell} |")
        if rows:
            out += ["| argument or option | type | default | what it does |", "| --- | --- | --- | --- |"]
            out += [*rows, ""]
    return "\n".join(out)
