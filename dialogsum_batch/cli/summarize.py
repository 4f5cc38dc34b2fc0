"""``dialogsum-batch summarize`` (the default command): options in, settings built, the library called."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import replace
from pathlib import Path

import click

from ..backends import registry
from ..backends.ct2_convert import FAST_QUANTIZATION, QUANTIZATIONS
from ..config import MODEL_ENV, RunSettings, ShardSettings, run_settings
from ..errors import ModelError, refuse_float16
from ..inference.job import JobFiles, written_files
from ..inference.outputs import OUTPUT_FIELDS, same_file
from ..inference.records import STDIN
from ..inference.runner import run_job
from ..logs import library_bars, stderr_is_terminal
from ..modelfiles import decoding_problem, machine_memory
from ..shards import COUNT_ENV, from_scheduler
from .common import (
    CONTEXT,
    EPILOG,
    batching_options,
    check_errors_out,
    command_log,
    decoding_options,
    errors_shown,
    input_options,
    job_files,
    log_options,
    long_options,
    output_options,
    setting_option,
    settings_options,
)

# A second signal stops at once: --resume still finds every whole line of an output file.
INTERRUPTED_AGAIN = "interrupted again: stopped at once; rerun with --resume to go on"
INTERRUPTED_AGAIN_STDOUT = "interrupted again: stopped at once"


def parse_shard(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | str | None:
    if value is None or value == "auto":
        return value
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise click.BadParameter("expected I/N, e.g. 2/4, or auto") from None
    if not 1 <= index <= count:
        raise click.BadParameter(f"I must be between 1 and N, got {value}")
    return index, count


def parse_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
        raise click.BadParameter(f"expected auto, cpu, cuda or cuda:N, got {value!r}")
    return value


def parse_backend(ctx: click.Context, param: click.Parameter, value: str) -> str:
    known = ["auto", *sorted(registry())]  # the built-ins and those of the dialogsum_batch.backends entry points
    if value not in known:
        raise click.BadParameter(f"expected one of {', '.join(known)}, got {value!r}")
    return value


@click.command("summarize", epilog=EPILOG, context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, type=click.Path(allow_dash=True))  # a folder: an unpacked Slack export
@setting_option("-m", "--model", envvar=MODEL_ENV, show_envvar=True)
@click.option(
    "-o",
    "--output",
    default="-",
    type=click.Path(allow_dash=True, dir_okay=False),
    help="Where the JSONL summaries go; - is stdout.",
)
@input_options
@setting_option("--backend", envvar="DIALOGSUM_BACKEND", show_envvar=True, callback=parse_backend)
@setting_option("--device", callback=parse_device)
@setting_option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]))
@setting_option("--force-dtype", is_flag=True)
@setting_option("--quantization", type=click.Choice(QUANTIZATIONS))
@click.option(
    "--fast",
    is_flag=True,
    help=f"Same as --quantization {FAST_QUANTIZATION}: about 1.6x the default's speed on the CPU; summaries may "
    "differ a little (ROUGE-1 -0.1 on the trained tiny model; bench/results/bench_default.md).",
)
@setting_option("--threads", type=click.IntRange(0))
@decoding_options
@setting_option("--max-source-length", type=click.IntRange(8))
@batching_options
@setting_option("--sort-window", type=click.IntRange(1))
@setting_option("--max-wait", type=click.FloatRange(0), metavar="SECONDS")
@long_options
@setting_option("--unordered", is_flag=True)
@setting_option("--on-error", type=click.Choice(["fail", "skip"]))
@output_options
@click.option(
    "--shard",
    callback=parse_shard,
    metavar="I/N|auto",
    help="Do shard I of N (1-based) of a job split over hosts; auto: I and N from a Kubernetes indexed Job, "
    "a Slurm array or an AWS Batch array job.",
)
@click.option(
    "--shard-by",
    type=click.Choice(["auto", "file", "record"]),
    default=ShardSettings.by,
    help="file: each shard opens only its own whole files, balanced by size; record: each reads every input "
    "and keeps the ids that hash to it; auto: file when there are at least N input files, else record "
    "(one file, stdin).",
)
@click.option(
    "--shard-count",
    type=click.IntRange(1),
    metavar="N",
    help=f"N for --shard auto where the scheduler does not say it (Kubernetes); else ${COUNT_ENV}.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    envvar="DIALOGSUM_PROGRESS",
    show_envvar=True,
    show_default=False,
    help="Draw the progress bar on stderr  [default: only when stderr is a terminal; never with --quiet]",
)
@setting_option("--trust-remote-code", is_flag=True)
@setting_option("--allow-pickle", is_flag=True)
@log_options
def summarize(**options) -> None:
    """Summarize chat dialogues in bulk with a fine-tuned Pegasus, JSONL in, JSONL out.

    Reads JSONL records (or plain-text dialogues separated by blank lines) from INPUTS
    or stdin, runs them through the model in length-sorted batches and writes one JSON
    object per record, in input order. Records with a reference get ROUGE scores.

    \b
      cat chats.jsonl | dialogsum-batch -m runs/pegasus-samsum > summaries.jsonl
      dialogsum-batch data/test.jsonl --num-beams 4 --metrics-out metrics.json
      dialogsum-batch 'logs/*.jsonl.gz' -o out.jsonl --resume --on-error skip --errors-out bad.jsonl
    """
    files = job_files(options)
    check_usage(options, files)
    log = command_log(options)
    asked = options["progress"]
    progress = not options["quiet"] and (stderr_is_terminal() if asked is None else asked)
    again = INTERRUPTED_AGAIN_STDOUT if options["output"] == "-" else INTERRUPTED_AGAIN
    with errors_shown(log, options["debug"], again):
        with library_bars(show=progress):  # Hub download bars, like ours, only on a watched terminal
            code, _ = run_job(files, build_settings(options), log, progress)
    sys.exit(code)


def check_usage(options: dict, files: JobFiles) -> None:
    """Flag combinations that cannot work: a usage error (exit 2) before anything starts."""
    if options["resume"] and options["output"] == "-":
        raise click.UsageError("--resume needs -o/--output FILE: stdout cannot be read back")
    check_errors_out(options)
    try:
        refuse_float16(options["dtype"], options["force_dtype"])
    except ModelError as error:
        raise click.UsageError(f"--dtype {error}") from None
    if options["fast"] and options["quantization"] not in (None, FAST_QUANTIZATION):
        raise click.UsageError(f"--fast is --quantization {FAST_QUANTIZATION}; pass one of them")
    if options["fast"] and options["backend"] == "transformers":
        raise click.UsageError("--fast runs int8 through CTranslate2; it does not apply to --backend transformers")
    clash = [name for name in options["keep_fields"] if name in OUTPUT_FIELDS]
    if clash:
        raise click.UsageError(
            f"--keep-fields {', '.join(clash)}: the output writes {'that' if len(clash) == 1 else 'those'} itself "
            f"({', '.join(sorted(OUTPUT_FIELDS))} are never copied from the input)"
        )
    check_shard(options)
    check_written_files(files)
    check_fit(options)


def check_fit(options: dict) -> None:
    """Decoding options the local model folder cannot run (a summary past its positions, a beam search larger
    than the machine's memory) are a usage error before it loads, not an out-of-memory crash later."""
    folder = Path(options["model"]).expanduser()
    if not folder.is_dir():
        return
    try:
        problem = decoding_problem(
            folder,
            options["num_beams"],
            options["max_new_tokens"],
            options["max_source_length"],
            machine_memory(),
        )
    except ModelError:
        return  # a broken config.json is the load's to report, in its own words
    if problem:
        raise click.UsageError(problem)


def check_shard(options: dict) -> None:
    if options["shard"] is None and options["shard_by"] != ShardSettings.by:
        raise click.UsageError("--shard-by only applies with --shard")
    if options["shard_count"] is not None and options["shard"] != "auto":
        raise click.UsageError("--shard-count only applies with --shard auto")
    if options["shard_by"] == "file" and (not options["inputs"] or STDIN in options["inputs"]):
        raise click.UsageError("--shard-by file needs input files: stdin can only be split by record")


def check_written_files(files: JobFiles) -> None:
    """Every file the job writes is distinct and none is named as an input: it would be emptied before it is
    read. Symlinks and hard links count. (A glob's matches are not refused: the job leaves its own files out.)"""
    written = written_files(files)
    for position, (name, path) in enumerate(written):
        clash = next((p for p in files.inputs if p != "-" and same_file(p, path)), None)
        if clash:
            raise click.UsageError(f"{name} {path} is also an input ({clash})")
        other = next((n for n, p in written[:position] if same_file(p, path)), None)
        if other:
            raise click.UsageError(f"{name} and {other} are the same file ({path})")


def build_settings(options: dict) -> RunSettings:
    """One frozen RunSettings from the parsed options (named as ``config.OPTION_FIELDS`` names them)."""
    named = settings_options(options)
    if options["fast"]:
        named["quantization"] = FAST_QUANTIZATION
    return run_settings(**{**named, "shard": shard_settings(options)})


def shard_settings(options: dict) -> ShardSettings | None:
    """The shard from --shard I/N, or from the scheduler's variables with --shard auto (ShardError: exit 2)."""
    shard, by = options["shard"], options["shard_by"]
    if shard is None:
        return None
    if shard == "auto":
        return replace(from_scheduler(os.environ, options["shard_count"]), by=by)
    index, count = shard
    return ShardSettings(index, count, by, origin=f"--shard {index}/{count}")
