"""`Registry`: backend names mapped to the factories that build them.

A factory is named as "module:function" and imported only when a backend is built, so listing or
checking names never imports torch or mlx: a producer host can validate `CHATLENS_CLASSIFIERS`
without the worker's dependencies installed. Packages outside chatlens can add backends through the
entry-point group given to the registry (`chatlens.classifiers`, `chatlens.summarisers`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from chatlens.core.errors import ChatlensError

if TYPE_CHECKING:
    from chatlens.core.settings import Settings

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, setting: str, entry_point_group: str) -> None:
        self.kind = kind  # "classifier", "summary backend": what error lines call an entry
        self.setting = setting  # the variable a user fixes when a name is wrong
        self.entry_point_group = entry_point_group
        self._factories: dict[str, str] = {}

    def add(self, name: str, factory: str) -> None:
        """Register `name`, built by `factory` ("package.module:function" or
        "package.module:Class.classmethod", called with the settings)."""
        if ":" not in factory:
            raise ValueError(f"factory {factory!r} must be 'module:function'")
        self._factories[name] = factory

    def _all(self) -> dict[str, str]:
        found = {ep.name: ep.value for ep in entry_points(group=self.entry_point_group)}
        return {**found, **self._factories}  # ours win a name clash: a plugin cannot replace a built-in

    def names(self) -> tuple[str, ...]:
        return tuple(self._all())

    def check(self, name: str) -> str:
        """The name, if registered; else one line naming what is known and what to fix."""
        if name not in self._all():
            raise ChatlensError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names())} (fix {self.setting})"
            )
        return name

    def factory(self, name: str) -> Callable[[Settings], T]:
        module_name, _, attribute = self._all()[self.check(name)].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and not module_name.startswith(exc.name):
                raise ChatlensError(
                    f"the {self.kind} {name!r} needs the Python package {exc.name!r}, which is not "
                    "installed: install chatlens with the extra it needs, e.g. pip install 'chatlens[worker]'"
                ) from exc
            raise
        factory: object = module
        for part in attribute.split("."):  # "Class.from_settings" as well as "build"
            factory = getattr(factory, part)
        return cast("Callable[[Settings], T]", factory)

    def build(self, name: str, settings: Settings) -> T:
        return self.factory(name)(settings)
