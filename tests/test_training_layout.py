"""How the training package sits in the project: no import cycles inside it, nothing from the layers above it.

Imports are read from the source (function-level ones included), so a cycle hidden inside a function
counts as much as one at the top of a module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dialogsum_batch.training

PACKAGE = Path(dialogsum_batch.training.__file__).parent
NAME = "dialogsum_batch.training"
ABOVE = (
    "dialogsum_batch.cli",
    "dialogsum_batch.tasks",
    "dialogsum_batch.inference.job",
    "dialogsum_batch.inference.parallel",
)


def module_name(path: Path) -> str:
    return NAME if path.name == "__init__.py" else f"{NAME}.{path.stem}"


def imports(path: Path, package_name: str = NAME) -> set[str]:
    """Every module ``path`` (in ``package_name``) imports, anywhere in it, as absolute names
    (``from P import m`` as both ``P`` and ``P.m``)."""
    package = package_name.split(".")
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = (
                ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
                if node.level
                else node.module
            )
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


MODULES = {module_name(path): imports(path) for path in sorted(PACKAGE.glob("*.py"))}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_training_imports_nothing_from_the_layers_above(module):
    assert not [name for name in MODULES[module] if name.startswith(ABOVE)]


def test_no_import_cycles_inside_training():
    edges = {module: {name for name in found if name in MODULES and name != NAME} for module, found in MODULES.items()}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for step in edges[start] - seen:
            if step == goal or reaches(step, goal, seen | {step}):
                return True
        return False

    assert [module for module in edges if module != NAME and reaches(module, module, set())] == []
    assert f"{NAME}.presets" not in edges[f"{NAME}.config"]  # presets are built from the config, not the reverse


def test_the_task_takes_its_options_and_launch_command_from_training():
    from dialogsum_batch.tasks import training as task_module

    found = imports(Path(task_module.__file__), "dialogsum_batch.tasks")
    assert found >= {f"{NAME}.launch", f"{NAME}.options"}
    assert not [name for name in found if name.startswith("dialogsum_batch.inference")]
