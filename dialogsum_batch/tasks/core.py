"""Everyday tasks: the tiny offline model and the test suite."""

from __future__ import annotations

import sys
from pathlib import Path

from . import register


@register(help={"output_dir": "Folder to write the model into", "seed": "Seed for weights and vocabulary"})
def tiny_model(c, output_dir="runs/tiny-pegasus", seed=0):
    """Build the tiny random-weight Pegasus (offline, seconds) for tests and smoke runs."""
    from ..fixtures.tiny import build_tiny_model

    path = build_tiny_model(output_dir, seed=int(seed))
    print(f"tiny Pegasus written to {path}")


@register(help={"fix": "Rewrite what ruff can fix (lint and format) instead of only checking"})
def lint(c, fix=False):
    """ruff (lint, format) and the import-linter contracts in pyproject.toml: the layers are a test, not a hope."""
    python = sys.executable
    c.run(f"{python} -m ruff check {'--fix ' if fix else ''}.", pty=False)
    c.run(f"{python} -m ruff format {'' if fix else '--check '}.", pty=False)
    c.run(str(Path(python).with_name("lint-imports")), pty=False)  # import-linter has no ``python -m`` entry


@register(
    help={
        "args": "Extra arguments for pytest, e.g. '-k rouge -x'",
        "lint_first": "Lint first (invoke lint)",
        "quick": "Leave out the tests marked slow (real training, subprocess fleets, Ray): the local loop",
    }
)
def test(c, args="", lint_first=True, quick=False):
    """Lint, then run the test suite (CI runs all of it; --quick leaves out the slow ones)."""
    if lint_first:
        lint(c)
    marker = "-m 'not slow' " if quick else ""
    c.run(f"{sys.executable} -m pytest {marker}{args}".strip(), pty=False)


@register(help={"output_dir": "Folder for the run, the summaries and the metrics"})
def quickstart(c, output_dir="runs/quickstart"):
    """The whole job offline: tiny Pegasus fine-tuned on data/, then summarize data/test.jsonl with ROUGE."""
    from ..fixtures import project_data_dir

    out = Path(output_dir)
    command = f"{sys.executable} -m dialogsum_batch"
    # --resume: a second quickstart finds the model finished ("nothing to resume") instead of refusing the folder
    c.run(f"{command} finetune --preset smoke --output-dir {out / 'model'} --resume", pty=False)
    sample = project_data_dir() / "test.jsonl"
    c.run(
        f"{command} summarize -m {out / 'model'} {sample} -o {out / 'summaries.jsonl'} "
        f"--metrics-out {out / 'metrics.json'} --threads 1",
        pty=False,
    )
    print(f"summaries: {out / 'summaries.jsonl'}\nmetrics:   {out / 'metrics.json'}")


CONSTRAINTS_HEADER = """\
# Exact versions CI installs with: pip install -c constraints.txt -e ".[test]" (docs/design.md, "Dependencies").
# Refreshed {day} from a fresh venv: invoke constraints. torch's local build tag (+cpu) is left off
# so that the CPU build here and a CUDA build elsewhere both satisfy it.
"""


@register(help={"venv": "Where to build the fresh environment", "test": "Also run the test suite in it"})
def constraints(c, venv="/tmp/dialogsum-newest", test=False):
    """Resolve the newest versions in a fresh venv and write them to constraints.txt (then review the diff)."""
    import datetime
    import re

    python = f"{venv}/bin/python"
    c.run(f"{sys.executable} -m venv --clear {venv}", pty=False)
    c.run(
        f"{python} -m pip install --quiet --upgrade pip && {python} -m pip install --quiet torch==2.13.0 "
        f"&& {python} -m pip install --quiet -e '.[test]'",
        pty=False,
    )
    frozen = c.run(f"{python} -m pip freeze --exclude-editable", hide=True).stdout
    pins = re.sub(r"^(torch==[^+\n]+)\+\S+$", r"\1", frozen, flags=re.M)  # any torch build satisfies it
    Path("constraints.txt").write_text(CONSTRAINTS_HEADER.format(day=datetime.date.today()) + pins, encoding="utf-8")
    print("constraints.txt rewritten; `git diff constraints.txt` shows what moved")
    if test:
        c.run(f"cd {Path.cwd()} && {venv}/bin/invoke test", pty=False)


@register(help={"examples": "Hypothesis examples per property test", "args": "Extra arguments for pytest"})
def fuzz(c, examples=2000, args=""):
    """The property-based tests (hypothesis) with a long example budget; CI runs a few seconds' worth."""
    env = {"HYPOTHESIS_PROFILE": "fuzz", "DIALOGSUM_FUZZ_EXAMPLES": str(int(examples))}
    c.run(f"{sys.executable} -m pytest -m property {args}".strip(), env=env, pty=False)
