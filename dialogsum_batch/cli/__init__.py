"""The ``dialogsum-batch`` command: one Click group, ``summarize`` its default subcommand.

``dialogsum-batch FILE`` and ``cat chats.jsonl | dialogsum-batch`` run ``summarize`` as they always did;
``finetune``, ``evaluate``, ``export`` and ``cache`` work from any folder after ``pip install``. Each
subcommand parses options, builds settings, calls the library and ends through ``common.errors_shown``.
"""

from __future__ import annotations

import click

from .. import allocator
from ..version import __version__
from .cache import cache
from .common import CONTEXT, EPILOG
from .evaluate import evaluate
from .export import export
from .finetune import finetune
from .ray import ray_command
from .summarize import summarize

DEFAULT_COMMAND = "summarize"
GROUP_FLAGS = ("-h", "--help", "--version")
INFERENCE = ("summarize", "evaluate")  # the subcommands whose process gets the batch allocator
OWN_PROCESS = "own process"  # ``run``'s context object: the command is the program, not a caller's function


class DefaultGroup(click.Group):
    """A group that runs ``summarize`` when the first argument names no subcommand (a file, ``-``, an option,
    or nothing: stdin). A file named like a subcommand is read with ``dialogsum-batch summarize NAME``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in GROUP_FLAGS):
            args = [DEFAULT_COMMAND, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[COMMAND] [OPTIONS] [ARGS]...")


@click.group(cls=DefaultGroup, context_settings=CONTEXT, epilog=EPILOG)
@click.version_option(__version__, "--version")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Summarize chat dialogues in bulk with a fine-tuned Pegasus; fine-tune, evaluate and export it.

    Without a COMMAND, ``summarize`` runs (its options: dialogsum-batch summarize --help).

    \b
      cat chats.jsonl | dialogsum-batch -m runs/pegasus-samsum > summaries.jsonl
      dialogsum-batch finetune --preset smoke --output-dir runs/smoke
      dialogsum-batch evaluate --model runs/smoke --data data/test.jsonl --output-dir runs/eval
      dialogsum-batch export --model runs/smoke --format ctranslate2 --output-dir serve/ct2
      dialogsum-batch cache --list
      dialogsum-batch ray 'chats/*.jsonl.gz' -m runs/pegasus-samsum -o summaries.jsonl --resume
    """
    if ctx.obj == OWN_PROCESS and ctx.invoked_subcommand in INFERENCE:
        allocator.keep_freed_memory()  # before any library starts a thread


def run() -> None:
    """The ``dialogsum-batch`` program and ``python -m dialogsum_batch``: the group in a process of its own."""
    main(prog_name="dialogsum-batch", obj=OWN_PROCESS)


for command in (summarize, finetune, evaluate, export, cache, ray_command):
    main.add_command(command)

__all__ = ["main", "run"]
