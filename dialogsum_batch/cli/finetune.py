"""``dialogsum-batch finetune``: its options are the training option table (``training.options.OPTIONS``)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import click

from ..training.launch import launch_finetune, launched
from ..training.options import INTERRUPTED, OPTIONS, Option
from .common import CONTEXT, command_log, errors_shown, log_options


def click_option(option: Option) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """One row of the option table as a Click option."""
    if option.kind is bool:
        return click.option(option.flag, option.name, is_flag=True, help=option.help)
    if option.kind is list:
        return click.option(option.flag, option.name, multiple=True, metavar=option.metavar, help=option.help)
    kind = click.IntRange(min=1) if option.kind is int else None  # a wrong count: a usage error (exit 2) at once
    return click.option(option.flag, option.name, type=kind, metavar=option.metavar, help=option.help)


def training_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(OPTIONS):
        command = click_option(option)(command)
    return command


@click.command("finetune", context_settings=CONTEXT)
@training_options
@log_options
def finetune(**options: Any) -> None:
    """Fine-tune Pegasus on SAMSum-style chats (Seq2SeqTrainer: ROUGE-picked best checkpoint, resume).

    Prints the run folder on stdout when done.

    \b
      dialogsum-batch finetune --preset smoke --output-dir runs/smoke
      dialogsum-batch finetune --data corpus.7z --output-dir runs/pegasus --set learning_rate=5e-5
      dialogsum-batch finetune --config my-run.yaml --resume
      dialogsum-batch finetune --num-processes 8 --output-dir runs/pegasus
      dialogsum-batch finetune --accelerate-config fsdp.yaml --output-dir runs/pegasus
    """
    from ..training.options import finetune_run

    log = command_log(options)
    with errors_shown(log, options["debug"], INTERRUPTED):
        if launched(options):
            sys.exit(launch_finetune(options))
        folder = finetune_run(options)
        if os.environ.get("RANK", "0") == "0":  # one line on stdout, not one per launched process
            click.echo(folder)
