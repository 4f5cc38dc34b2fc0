"""Invoke tasks as a registry: modules in this package register their tasks with ``@register``.

``collection()`` imports every module here, then whatever other packages declare under the
``dialogsum_batch.tasks`` entry-point group (a module, or a single Task), and returns one
Invoke ``Collection``. The root ``tasks.py`` is just ``ns = collection()``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Mapping
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


def takes_options(
    defaults: Mapping[str, Any], kind: inspect._ParameterKind = inspect.Parameter.KEYWORD_ONLY
) -> Callable[[Callable[[Any, dict[str, Any]], Any]], Callable[..., Any]]:
    """Turn ``body(c, options)`` into ``task(c, NAME=DEFAULT, ...)``, one parameter of ``kind`` per option.

    Invoke builds the task's flags from that signature; ``options`` holds every option, defaults
    filled in, and a misspelt keyword in a direct call is a TypeError as with any function.
    """
    context = inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    signature = inspect.Signature([context] + [inspect.Parameter(n, kind, default=d) for n, d in defaults.items()])

    def wrap(body: Callable[[Any, dict[str, Any]], Any]) -> Callable[..., Any]:
        @functools.wraps(body)
        def task(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return body(bound.arguments["c"], {name: bound.arguments[name] for name in defaults})

        task.__signature__ = signature  # type: ignore[attr-defined]  # inspect (and so Invoke) reads this first
        return task

    return wrap


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
