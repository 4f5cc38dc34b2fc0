"""What every subcommand shares: the context settings, the logging options, and how errors end a command."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from ..config import OPTION_FIELDS, default_of, help_of
from ..errors import DialogsumError, OutputClosed
from ..inference.job import JobFiles
from ..inference.outputs import discard_stdout
from ..inference.records import MAX_LINE_BYTES
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


def parse_keep(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name.strip() for item in value for name in item.split(",") if name.strip())


def setting_option(*decls: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A Click option for a settings field (``config.OPTION_FIELDS``): its default and its help are the field's,
    so no command restates them. ``decls`` as for ``click.option``; the name is the last one without dashes,
    else the longest flag's."""
    named = [d for d in decls if not d.startswith("-")]
    name = named[-1] if named else max(decls, key=len).lstrip("-").replace("-", "_")
    kwargs.setdefault("help", help_of(name))
    if not kwargs.get("is_flag") and not kwargs.get("multiple"):
        kwargs.setdefault("default", default_of(name))
    return click.option(*decls, **kwargs)


def options(*made: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Callable[[Callable[..., Any]], Any]:
    """Several options as one decorator, in the order given."""

    def apply(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(made):
            command = option(command)
        return command

    return apply


# The option groups that summarize and ray share (each reads its default and help from its settings field).
decoding_options = options(
    setting_option("--num-beams", type=click.IntRange(1)),
    setting_option("--max-new-tokens", type=click.IntRange(1)),
    setting_option("--length-penalty", type=float),
    setting_option("--no-repeat-ngram-size", type=click.IntRange(0)),
)
batching_options = options(
    setting_option("--batch-tokens", type=click.IntRange(1)),
    setting_option("--max-batch-size", type=click.IntRange(1)),
)
long_options = options(
    setting_option("--long", type=click.Choice(["truncate", "chunk"])),
    setting_option("--long-overlap", type=click.IntRange(0), metavar="TURNS"),
    setting_option("--long-target", type=click.IntRange(1), metavar="TOKENS"),
)


def format_choice() -> click.Choice:
    """``auto`` and every registered input format (built-ins and ``dialogsum_batch.formats`` entry points)."""
    from ..formats import format_names

    return click.Choice(["auto", *format_names()])


input_options = options(
    click.option(
        "--format",
        "input_format",
        type=format_choice(),
        default="auto",
        help="Input format (docs/formats.md); auto goes by content, then by file suffix, and says which it chose.",
    ),
    setting_option("--gap", "gap_minutes", type=click.FloatRange(0, min_open=True), metavar="MINUTES"),
    click.option(
        "--max-line-bytes",
        default=MAX_LINE_BYTES,
        type=click.IntRange(1),
        help="Longer input lines become bad records, read past without holding them in memory.",
    ),
    setting_option("--text-field"),
    setting_option("--id-field"),
    setting_option("--reference-field"),
    setting_option("--keep-fields", multiple=True, callback=parse_keep),
)
output_options = options(
    click.option("--errors-out", type=click.Path(dir_okay=False), help="JSONL file for skipped records."),
    click.option("--resume", is_flag=True, help="Skip ids already in --output and append the rest."),
    click.option("--lock", "lock_file", type=click.Path(dir_okay=False), help="Lock file  [default: OUTPUT.lock]"),
    click.option(
        "--metrics-out",
        type=click.Path(dir_okay=False),
        help="JSON of the run however it ends (status, counts, model, versions, options); an earlier one is replaced.",
    ),
)

# --log-format, -q/--quiet and --debug, the same on every subcommand.
log_options = options(
    click.option("--log-format", type=click.Choice(["text", "json"]), default="text", help="stderr log lines."),
    click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr; no progress bar."),
    click.option("--debug", is_flag=True, envvar="DIALOGSUM_DEBUG", help="Show tracebacks for expected errors too."),
)


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


def settings_options(options: dict[str, Any]) -> dict[str, Any]:
    """The parsed options that are settings (``config.OPTION_FIELDS``), for ``run_settings``."""
    return {name: value for name, value in options.items() if name in OPTION_FIELDS}


def check_errors_out(options: dict[str, Any]) -> None:
    if options["errors_out"] and options["on_error"] != "skip":
        raise click.UsageError("--errors-out only applies with --on-error skip")
