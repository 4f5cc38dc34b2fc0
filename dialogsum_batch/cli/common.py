"""What every subcommand shares: the context settings, the logging options, and how errors end a command."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from ..errors import DialogsumError, OutputClosed
from ..inference.job import JobFiles
from ..inference.outputs import discard_stdout
from ..logs import Log

CONTEXT = {"help_option_names": ["-h", "--help"], "show_default": True}
INTERRUPTED = "interrupted"

EPILOG = """\b
Exit codes:
  0    every record summarized
  1    failed (bad input with --on-error fail, bad model, I/O error)
  2    usage error
  3    partial: some records were bad and skipped (--on-error skip)
  75   locked: another run is writing the same output
  130  interrupted by SIGINT, 143 by SIGTERM (finished records were written)
  141  stdout closed by its reader (| head): stopped quietly, as a Unix filter
"""


def log_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--log-format``, ``-q/--quiet`` and ``--debug``, the same on every subcommand."""
    for option in reversed(
        [
            click.option("--log-format", type=click.Choice(["text", "json"]), default="text", help="stderr log lines."),
            click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr; no progress bar."),
            click.option(
                "--debug", is_flag=True, envvar="DIALOGSUM_DEBUG", help="Show tracebacks for expected errors too."
            ),
        ]
    ):
        command = option(command)
    return command


def command_log(options: dict[str, Any]) -> Log:
    """The stderr log the logging options ask for."""
    return Log(options["log_format"], options["quiet"])


@contextlib.contextmanager
def errors_shown(log: Log, debug: bool, interrupted: str = INTERRUPTED) -> Iterator[None]:
    """Expected failures end the command as one line on stderr and their exit code (``errors.py``: 1 for bad
    data, model or settings, 75 locked); ``--debug`` shows the traceback instead. Ctrl-C ends with 130."""
    try:
        yield
    except OutputClosed as exc:  # `| head -1`: the reader has what it wanted; end as a Unix filter does, quietly
        discard_stdout()
        log.info(str(exc))
        sys.exit(exc.exit_code)
    except DialogsumError as exc:
        if debug:
            raise
        log.error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        log.error(interrupted)
        sys.exit(130)


def parse_keep(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name.strip() for item in value for name in item.split(",") if name.strip())


def job_files(options: dict) -> JobFiles:
    """The job's inputs and outputs from the parsed options."""
    return JobFiles(
        inputs=tuple(options["inputs"]),
        input_format=options["input_format"],
        output=options["output"],
        errors_out=options["errors_out"],
        metrics_out=options["metrics_out"],
        lock=options["lock_file"],
        resume=options["resume"],
        max_line_bytes=options["max_line_bytes"],
    )
