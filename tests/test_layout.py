"""No test module imports another: what tests share lives in fixture modules (tests/fixtures/,
tests/helpers.py, tests/redis_harness.py) or in a conftest's fixtures, so running, moving or deleting one
test module never changes another. Read with ast, so it costs nothing to run."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Where an import of a test module could hide: the tests themselves and the scripts that reuse them.
SCANNED = ("tests", "scripts")
# "tests.fixtures.toy_classifier:build" (a registry entry) or "-m tests.fixtures.slow_classifier".
DOTTED = re.compile(r"^tests(\.\w+)+(:\w+)?$")


def is_test_module(module: str, root: Path) -> bool:
    """`module` (dotted, under tests) is a file pytest collects as tests, or a conftest."""
    name = module.rsplit(".", 1)[-1]
    path = root.joinpath(*module.split("."))
    is_file = path.with_suffix(".py").is_file()
    return is_file and (name.startswith("test_") or name == "conftest")


def imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """(line, dotted module) for each module under tests/ that the file at `path` imports or names."""
    package = path.relative_to(root).with_suffix("").parts[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            # `from tests.worker import test_metrics` imports a module too.
            found += [(node.lineno, base), *((node.lineno, f"{base}.{a.name}") for a in node.names)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and DOTTED.match(node.value):
            found.append((node.lineno, node.value.split(":", 1)[0]))
    return [(line, module) for line, module in found if module.split(".")[0] == "tests"]


def find_test_module_imports(root: Path) -> list[str]:
    """One line per import of a test module by any file under `SCANNED`."""
    problems = []
    for top in SCANNED:
        for path in sorted((root / top).rglob("*.py")):
            for line, module in imported_modules(path, root):
                if is_test_module(module, root):
                    problems.append(
                        f"{path.relative_to(root)}:{line} imports test module {module}; "
                        "move what it shares into tests/fixtures/"
                    )
    return problems


def test_no_test_module_imports_another() -> None:
    problems = find_test_module_imports(ROOT)
    assert not problems, "\n".join(problems)


def test_the_check_finds_a_planted_import(tmp_path: Path) -> None:
    """The check above can fail: a tree with each way of importing a test module gives one line each."""
    (tmp_path / "tests" / "worker").mkdir(parents=True)
    (tmp_path / "scripts").mkdir()
    (tmp_path / "tests" / "worker" / "test_metrics.py").write_text("def sample(): ...\n")
    (tmp_path / "tests" / "worker" / "shared.py").write_text("X = 1\n")
    (tmp_path / "tests" / "test_a.py").write_text(
        "from tests.worker.test_metrics import sample\n"
        "from tests.worker import test_metrics\n"
        "from .worker.test_metrics import sample as s\n"
        "from tests.worker.shared import X\n"
        "PATH = 'tests.worker.test_metrics:sample'\n"
    )
    (tmp_path / "scripts" / "tool.py").write_text("import tests.worker.test_metrics\n")
    problems = find_test_module_imports(tmp_path)
    assert [p.split(" imports")[0] for p in problems] == [
        "tests/test_a.py:1",
        "tests/test_a.py:2",
        "tests/test_a.py:3",
        "tests/test_a.py:5",
        "scripts/tool.py:1",
    ]
    assert all("test module tests.worker.test_metrics" in p for p in problems)
