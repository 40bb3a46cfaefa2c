"""rq's private API: used in chatlens/core/rq_private.py only, and each hook there still does what it did
under rq 3.0. A failure names the hook and the installed rq version: re-read rq's source for that name
before changing the pin in pyproject.toml."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fakeredis
import pytest
import rq
from rq import Queue
from rq.callbacks import Callback
from rq.cron import CronJob, CronScheduler
from rq.job import Job

from chatlens.core import queues as q
from chatlens.core.rq_private import add_cron_job, callback_names

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("chatlens", "producer", "worker", "eval", "scripts", "tests")
# The module that holds the hooks, and these tests of it.
EXEMPT = {Path("chatlens/core/rq_private.py"), Path("tests/core/test_rq_private.py")}


def rq_private_names() -> frozenset[str]:
    """Every single-underscore name rq's source defines: functions, classes, methods, attributes,
    module globals (`_` alone, a throwaway variable, is no API)."""
    names: set[str] = set()
    for path in Path(rq.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                found = node.name
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                found = node.attr
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                found = node.id
            else:
                continue
            if found.startswith("_") and not found.startswith("__") and len(found) > 1:
                names.add(found)
    return frozenset(names)


def _rq_derived_classes(trees: list[ast.Module]) -> set[str]:
    """Names of the classes, anywhere in `trees`, that derive from a class imported from rq (directly or
    through another such class): their `self._x` may be rq's."""
    imported = {
        alias.asname or alias.name
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "rq"
        for alias in node.names
    }
    bases = {
        node.name: {ast.unparse(b).split(".")[-1] for b in node.bases}
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }
    derived: set[str] = set()
    grown = True
    while grown:
        new = {name for name, of in bases.items() if of & (imported | derived)} - derived
        derived |= new
        grown = bool(new)
    return derived


def private_uses(tree: ast.Module, private: frozenset[str], derived: set[str]) -> Iterator[tuple[int, str]]:
    """(line, what) for each use of a private rq name in `tree`."""
    strings_in_fstrings = {
        id(v) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for v in node.values
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "rq":
            parts = [*(node.module or "").split("."), *(a.name for a in node.names)]
            if any(p.startswith("_") and not p.startswith("__") for p in parts):
                yield node.lineno, ast.unparse(node)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "rq" and any(p.startswith("_") and not p.startswith("__") for p in parts):
                    yield node.lineno, ast.unparse(node)
        elif isinstance(node, ast.ClassDef) and node.name in derived:
            for item in ast.walk(node):
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name in private:
                    yield item.lineno, f"{node.name} overrides rq's {item.name}"
                elif (
                    isinstance(item, ast.Attribute)
                    and item.attr in private
                    and isinstance(item.value, ast.Name)
                    and item.value.id in ("self", "cls")
                ):
                    yield item.lineno, f"{node.name}: {ast.unparse(item)}"
        elif isinstance(node, ast.Attribute) and node.attr in private:
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                yield node.lineno, ast.unparse(node)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value in private
            and id(node) not in strings_in_fstrings
        ):
            yield node.lineno, repr(node.value)  # getattr(job, "_name") and the like


def test_the_scan_finds_each_way_of_using_a_private_name() -> None:
    private = rq_private_names()
    assert {"_enqueue_job", "_stop_requested", "_success_callback_name", "_current_job"} <= private
    source = """
from rq import SimpleWorker
from rq.job import _current_job
class W(SimpleWorker):
    def f(self): return self._stop_requested
    def _execute(self): pass
class Mine:
    def g(self, queue, job):
        queue._enqueue_job(job)
        getattr(job, "_success_callback_name")
        return self._stop_requested, f"{job}_key"
"""
    tree = ast.parse(source)
    found = sorted(line for line, _ in private_uses(tree, private, _rq_derived_classes([tree])))
    # Not `self._stop_requested` of a class of our own, nor text inside an f-string.
    assert found == [3, 5, 6, 9, 10], list(private_uses(tree, private, _rq_derived_classes([tree])))


def test_no_private_rq_name_outside_rq_private() -> None:
    private = rq_private_names()
    files = [p for d in SCANNED for p in sorted((ROOT / d).rglob("*.py")) if ".venv" not in p.parts]
    trees = {p: ast.parse(p.read_text(encoding="utf-8")) for p in files}
    derived = _rq_derived_classes(list(trees.values()))
    assert {"ContextJob", "ChatlensWorker", "JSONCronJob", "JSONCronScheduler"} <= derived
    found = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path, tree in trees.items()
        if path.relative_to(ROOT) not in EXEMPT
        for line, what in private_uses(tree, private, derived)
    ]
    assert not found, (
        "private rq names belong in chatlens/core/rq_private.py, each with why and a test here:\n"
        + "\n".join(found)
    )


@contextmanager
def hook(name: str, relies_on: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:  # an AttributeError as much as a failed assert
        pytest.fail(
            f"rq {rq.__version__} broke chatlens/core/rq_private.py:{name}, which relies on {relies_on}:"
            f" {type(exc).__name__}: {exc}",
            pytrace=False,
        )


def test_callback_names_reads_the_stored_names_without_importing_them() -> None:
    connection = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    queue = Queue("classify-x", connection=connection, serializer=q.SERIALIZER)
    with hook("callback_names", "Job._success/_failure/_stopped_callback_name, restored from Redis"):
        plain = queue.enqueue(q.CLASSIFY_JOB, kwargs={})
        assert callback_names(Job.fetch(plain.id, connection=connection, serializer=q.SERIALIZER)) == []
        # Modules that do not exist: reading the names must not import them.
        carrying = queue.enqueue(
            q.CLASSIFY_JOB,
            kwargs={},
            on_success=Callback("no_such_module.on_success"),
            on_failure=Callback("no_such_module.on_failure"),
            on_stopped=Callback("no_such_module.on_stopped"),
        )
        fetched = Job.fetch(carrying.id, connection=connection, serializer=q.SERIALIZER)
        assert callback_names(fetched) == [
            "no_such_module.on_success",
            "no_such_module.on_failure",
            "no_such_module.on_stopped",
        ]


def nightly(ctx: object) -> None:
    """A function for the scheduler to enqueue; never run."""


def test_add_cron_job_schedules_a_cron_job_of_our_own_class() -> None:
    class Marked(CronJob):
        pass

    connection = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    with hook("add_cron_job", "CronScheduler._cron_jobs, the list register() appends to"):
        scheduler = CronScheduler(connection=connection)
        job = Marked(queue_name="eval", func=nightly, interval=60)
        add_cron_job(scheduler, job)
        assert scheduler.get_jobs() == [job]
        # The scheduler's loop enqueues it (an interval job is due at once) and plans its next run.
        assert scheduler.enqueue_jobs() == [job]
        assert Queue("eval", connection=connection).count == 1
        assert 0 < scheduler.calculate_sleep_interval() <= 60
