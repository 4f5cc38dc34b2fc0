"""Everyday tasks: the tiny offline model and the test suite."""

from __future__ import annotations

import sys

from . import register


@register(help={"output_dir": "Folder to write the model into", "seed": "Seed for weights and vocabulary"})
def tiny_model(c, output_dir="runs/tiny-pegasus", seed=0):
    """Build the tiny random-weight Pegasus (offline, seconds) for tests and smoke runs."""
    from ..tiny import build_tiny_model

    path = build_tiny_model(output_dir, seed=int(seed))
    print(f"tiny Pegasus written to {path}")


@register(help={"args": "Extra arguments for pytest, e.g. '-k rouge -x'"})
def test(c, args=""):
    """Run the test suite (about five minutes on 2 CPU cores)."""
    c.run(f"{sys.executable} -m pytest {args}".strip(), pty=False)
