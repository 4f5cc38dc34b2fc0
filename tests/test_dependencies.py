"""The package declares exactly what it imports: nothing implicit, nothing unused."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import packages_distributions, requires
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dialogsum_batch"
# Declared though never imported: transformers needs it to read a legacy spiece.model, and says so
# only by falling through to a misleading tiktoken error.
NEEDED_WITHOUT_IMPORT = {"protobuf"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def imported_modules() -> set[str]:
    """Top-level modules the package imports anywhere, function-level imports included."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"dialogsum_batch", "__future__"}


def declared() -> tuple[set[str], set[str]]:
    """(install_requires, every extra) as normalised distribution names."""
    core, extras = set(), set()
    for line in requires("dialogsum-batch") or []:
        name = normalise(re.split(r"[ ;<>=!~\[]", line, maxsplit=1)[0])
        (extras if "extra ==" in line else core).add(name)
    return core, extras


def test_every_imported_module_is_declared():
    owners = packages_distributions()
    core, extras = declared()
    missing = {
        module: owners.get(module)
        for module in imported_modules()
        if not {normalise(d) for d in owners.get(module, [])} & (core | extras)
    }
    assert not missing, f"imported but not declared in setup.py: {missing}"


def test_every_declared_requirement_is_imported():
    owners = packages_distributions()
    used = {normalise(dist) for module in imported_modules() for dist in owners.get(module, [])}
    core, _ = declared()
    assert core - used - NEEDED_WITHOUT_IMPORT == set(), "declared in setup.py but never imported"
