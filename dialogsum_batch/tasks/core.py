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
    """Run the test suite (about three minutes on 2 CPU cores)."""
    c.run(f"{sys.executable} -m pytest {args}".strip(), pty=False)


@register(help={"output_dir": "Folder for the run, the summaries and the metrics"})
def quickstart(c, output_dir="runs/quickstart"):
    """The whole job offline: tiny Pegasus fine-tuned on data/, then summarize data/test.jsonl with ROUGE."""
    from pathlib import Path

    from ..tiny import project_data_dir

    c.run(f"invoke finetune --preset smoke --output-dir {output_dir}/model", pty=False)
    sample = project_data_dir() / "test.jsonl"
    out = Path(output_dir)
    c.run(f"{sys.executable} -m dialogsum_batch -m {out / 'model'} {sample} -o {out / 'summaries.jsonl'} "
          f"--metrics-out {out / 'metrics.json'} --threads 1", pty=False)
    print(f"summaries: {out / 'summaries.jsonl'}\nmetrics:   {out / 'metrics.json'}")
