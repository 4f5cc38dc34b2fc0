"""Invoke tasks as a registry: modules in this package register their tasks with ``@register``.

``collection()`` imports every module here, then whatever other packages declare under the
``dialogsum_batch.tasks`` entry-point group (a module, or a single Task), and returns one
Invoke ``Collection``. The root ``tasks.py`` is just ``ns = collection()``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from invoke import Collection, Task, task

REGISTRY: dict[str, Task] = {}


def register(func: Callable[..., Any] | None = None, **options: Any) -> Any:
    """``@register`` or ``@register(help={...})``: make an Invoke task and add it to the registry."""

    def wrap(fn: Callable[..., Any]) -> Task:
        made = task(**options)(fn) if options else task(fn)
        REGISTRY[fn.__name__.replace("_", "-")] = made
        return made

    return wrap(func) if func is not None else wrap


def _builtin_modules() -> list[ModuleType]:
    return [importlib.import_module(f"{__name__}.{info.name}") for info in pkgutil.iter_modules(__path__)]


def _plugins() -> None:
    for entry in entry_points(group="dialogsum_batch.tasks"):
        loaded = entry.load()
        if isinstance(loaded, Task):
            REGISTRY.setdefault(entry.name, loaded)


def collection() -> Collection:
    """Every registered task, built-in and from plugins, in one Collection."""
    _builtin_modules()
    _plugins()
    namespace = Collection()
    for name, made in sorted(REGISTRY.items()):
        namespace.add_task(made, name=name)
    return namespace
