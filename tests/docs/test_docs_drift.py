"""The README and the documentation site name settings, commands, options, paths and Redis keys that exist.

Every `CHATLENS_*` name is a setting; every `chatlens ...` command line in code names commands and options
the typer app has; every repository path named in code exists; every key builder of chatlens/core/keys.py
is on the Redis keys page. A failure names the file, the line and the fix."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from chatlens.core import keys
from chatlens.core.settings import Settings
from docs_hooks import cli_tree, settings_table

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# Paths that the docs name as examples of what a reader would write, not as files of the repository.
EXAMPLE_PATHS = {"chatlens/backends/classifiers/keyword.py"}

_FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n(.*?)^[ \t]*\1[ \t]*$", re.M | re.S)
_INLINE = re.compile(r"`([^`\n]+)`")
_ENV = re.compile(r"\bCHATLENS_[A-Z0-9_]+")
_PATH = re.compile(
    r"(?<![\w./-])((?:chatlens|producer|worker|eval|tests|scripts|deploy|docs|docs_hooks|\.ci)/[\w./-]*"
    r"|(?:pyproject\.toml|Makefile|Dockerfile|docker-compose\.yml|\.env\.example|mkdocs\.yml)\b)"
)
_SHELL_END = {"|", "||", "&&", ";", "&", ">", ">>", "2>", "<"}
_PLACEHOLDER = re.compile(r"^([A-Z][A-Z_]*|…|\.\.\.)$")


@dataclass(frozen=True)
class Snippet:
    file: Path
    line: int
    text: str

    def where(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def prose_lines(path: Path) -> Iterator[Snippet]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        yield Snippet(path, number, line)


def code(path: Path) -> Iterator[Snippet]:
    """Code of a page, line by line: fenced blocks (backslash continuations joined) and inline spans."""
    text = path.read_text(encoding="utf-8")
    for block in _FENCE.finditer(text):
        first = _line_of(text, block.start(2))
        body = block.group(2)
        joined = re.sub(r"\\\n", " ", body)
        for offset, line in enumerate(joined.splitlines()):
            yield Snippet(path, first + offset, line)
    outside = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for span in _INLINE.finditer(outside):
        yield Snippet(path, _line_of(outside, span.start()), span.group(1))


def test_every_chatlens_variable_is_a_setting() -> None:
    names = settings_table.all_env_names()
    wrong = []
    for path in doc_files():
        for snippet in prose_lines(path):
            for found in _ENV.findall(snippet.text):
                # CHATLENS_REGRESSION_* or CHATLENS_REDIS_TLS_…: a prefix of settings
                known = any(n.startswith(found) for n in names) if found.endswith("_") else found in names
                if not known:
                    wrong.append(f"{snippet.where()}: {found} is not a setting of chatlens/core/settings.py")
    assert not wrong, "\n".join(wrong)


_QUOTED_DEFAULT = re.compile(r"`(CHATLENS_[A-Z0-9_]+)`(?:,| \()\s*([0-9][0-9,]*(?:\.[0-9]+)?)(?:\s+(days?))?")


def test_a_default_quoted_beside_a_setting_is_its_default() -> None:
    """`CHATLENS_EXECUTION_TTL_S` (20 s): prose that quotes a default says the one the code has."""
    defaults = {
        settings_table.env_names(name, info)[0]: settings_table.default_value(info)
        for name, info in Settings.model_fields.items()
    }
    wrong = []
    for path in doc_files():
        for snippet in prose_lines(path):
            for name, number, unit in _QUOTED_DEFAULT.findall(snippet.text):
                default = defaults.get(name)
                if isinstance(default, bool) or not isinstance(default, (int, float)):
                    continue  # a list, a string, unset: not quoted as one number
                quoted = float(number.replace(",", "")) * (86_400 if unit else 1)
                if quoted != default:
                    said = f"{number} {unit}".strip()
                    wrong.append(f"{snippet.where()}: {name} quoted as {said}; its default is {default}")
    assert not wrong, "\n".join(wrong)


def command_lines(snippet: Snippet) -> Iterator[list[str]]:
    """The words after each `chatlens` (or `python -m chatlens`, `.venv/bin/chatlens`) in a line of code,
    up to the end of the shell command."""
    line = snippet.text.split(" #", 1)[0]
    words = line.split()
    for index, word in enumerate(words):
        if word == "chatlens" or word.endswith("/chatlens"):
            rest = []
            for after in words[index + 1 :]:
                if after in _SHELL_END or after.startswith("#"):
                    break
                rest.append(after)
            yield rest


def _option(word: str) -> str | None:
    word = word.strip("[](),")
    if word.startswith("--") and len(word) > 2:
        return word.split("=", 1)[0]
    if re.fullmatch(r"-[A-Za-z]", word):
        return word
    return None


def check_command(words: list[str]) -> str | None:
    """Why `chatlens WORDS` is not a command line of the app, or None."""
    entry, rest = cli_tree.find(words)
    if entry.is_group and rest:
        head = rest[0]
        if _option(head) is None and not _PLACEHOLDER.match(head.strip("[]")):
            known = ", ".join(entry.subcommands())
            return f"`{entry.name} {head}`: no such command (there are: {known})"
        if _option(head) is None:
            return None  # `chatlens train MODE --help`: a placeholder for a command, options unknowable
    options = entry.option_names()
    for word in rest:
        option = _option(word)
        if option is not None and option not in options:
            return f"`{entry.name}` has no option {option} (it has: {', '.join(sorted(options))})"
    return None


def test_every_chatlens_command_and_option_exists() -> None:
    wrong = []
    for path in doc_files():
        for snippet in code(path):
            for words in command_lines(snippet):
                problem = check_command(words)
                if problem:
                    wrong.append(f"{snippet.where()}: {problem}")
    assert not wrong, "\n".join(wrong)


def test_every_repository_path_exists() -> None:
    wrong = []
    for path in doc_files():
        snippets = list(code(path))
        if path.name == "README.md":  # links from the README into the repository (the site checks its own)
            text = path.read_text(encoding="utf-8")
            for link in re.finditer(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
                if "://" not in link.group(1):
                    snippets.append(Snippet(path, _line_of(text, link.start()), link.group(1)))
        for snippet in snippets:
            for found in _PATH.findall(snippet.text):
                named = found.rstrip(".,:;")
                if named in EXAMPLE_PATHS or re.search(r"[*{}<>]|[A-Z]{3,}", named):
                    continue
                if not (ROOT / named).exists():
                    wrong.append(f"{snippet.where()}: {named} does not exist in the repository")
    assert not wrong, "\n".join(wrong)


def test_every_key_builder_is_on_the_redis_keys_page() -> None:
    page = (DOCS / "reference" / "redis-keys.md").read_text(encoding="utf-8")
    public = [
        name
        for name, value in vars(keys).items()
        if not name.startswith("_")
        and (
            (inspect.isfunction(value) and value.__module__ == keys.__name__)
            or (name.isupper() and isinstance(value, (str, dict)))
        )
    ]
    assert len(public) > 10, public  # the walk found keys.py's builders
    missing = [name for name in public if f"`keys.{name}`" not in page]
    assert not missing, f"docs/reference/redis-keys.md does not name keys.{', keys.'.join(missing)}"


def test_the_configuration_page_refuses_a_setting_without_a_description() -> None:
    class Undescribed(Settings):
        shiny_new_knob: int = 3

    with pytest.raises(settings_table.MissingDescription, match="CHATLENS_SHINY_NEW_KNOB"):
        settings_table.markdown(Undescribed)
    assert settings_table.undescribed(Settings) == []
    assert "CHATLENS_JOB_TIMEOUT_S" in settings_table.markdown(Settings)


def test_no_absolute_path_of_a_development_machine() -> None:
    wrong = [
        f"{snippet.where()}: {snippet.text.strip()}"
        for path in doc_files()
        for snippet in prose_lines(path)
        if re.search(r"(?<![\w.])/(work|home|Users|root)/", snippet.text)
    ]
    assert not wrong, "write ../shared/data/... or a path relative to the checkout:\n" + "\n".join(wrong)


def test_the_checks_see_the_docs() -> None:
    """The extraction finds what it checks: the quick start's commands and the settings page's names."""
    readme = list(code(ROOT / "README.md"))
    assert any(words[:1] == ["produce"] for s in readme for words in command_lines(s))
    assert check_command(["produce", "x.csv", "--run", "r"]) is None
    assert check_command(["produce", "x.csv", "--no-such-option"]) is not None
    assert check_command(["no-such-command"]) is not None
    assert check_command(["train", "head", "--train", "f.csv"]) is None
    assert "CHATLENS_REDIS_URL" in settings_table.all_env_names()
