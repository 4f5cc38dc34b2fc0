"""``dialogsum-batch ray``: the command's JSONL job on a Ray cluster (or a local Ray), options in, job run.

The Click group registers ``ray_command``; ``python -m dialogsum_batch.ray`` runs it on its own.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..config import MODEL_ENV, OPTION_FIELDS, RaySettings, RunSettings, default_of, run_settings
from ..formats import format_names
from ..inference.records import MAX_LINE_BYTES
from ..logs import library_bars, stderr_is_terminal
from .common import CONTEXT, EPILOG, command_log, errors_shown, job_files, log_options, parse_keep

INTERRUPTED = "interrupted: the rows written are whole; rerun with --resume to go on"


def option(*names: str, **kwargs: Any) -> Any:
    """A Click option whose default is its settings field's (``config.default_of``), when it has one."""
    key = names[-1].lstrip("-").replace("-", "_") if len(names) == 1 or names[-1].startswith("-") else names[-1]
    if key in OPTION_FIELDS and "default" not in kwargs and not kwargs.get("is_flag"):
        kwargs["default"] = default_of(key)
    return click.option(*names, **kwargs)


@click.command("ray", epilog=EPILOG, context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, required=True, type=click.Path())  # a folder: an unpacked Slack export
@option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="JSONL file the summaries go to.")
@option("-m", "--model", envvar=MODEL_ENV, show_envvar=True, help="Model folder or Hub id, as every node sees it.")
@option("--address", envvar="RAY_ADDRESS", show_envvar=True, help="Ray cluster to run on  [default: a local Ray]")
@option("--workers", default=RaySettings.workers, type=click.IntRange(0), help="Model actors; 0: as many as fit.")
@option(
    "--cpus-per-worker",
    default=RaySettings.cpus_per_worker,
    type=click.FloatRange(0, min_open=True),
    help="Logical CPUs per actor, also its inference threads (rounded up).",
)
@option(
    "--gpus-per-worker",
    default=RaySettings.gpus_per_worker,
    type=click.FloatRange(0),
    help="GPUs per actor (0.5: two actors share one).",
)
@option("--batch-size", default=RaySettings.batch_size, type=click.IntRange(1), help="Rows Ray hands an actor at once.")
@option(
    "--format",
    "input_format",
    type=click.Choice(["auto", *format_names()]),
    default="auto",
    help="Input format (docs/formats.md); auto goes by content, then by file suffix.",
)
@option(
    "--gap",
    "gap_minutes",
    type=click.FloatRange(0, min_open=True),
    metavar="MINUTES",
    help="Chat exports and subtitles: a silence longer than this starts a new dialogue.",
)
@option("--max-line-bytes", default=MAX_LINE_BYTES, type=click.IntRange(1), help="Longer lines are bad records.")
@option("--text-field", help="JSONL field holding the dialogue.")
@option("--id-field", help="JSONL field holding the record id (else FILE:LINE).")
@option("--reference-field", help="JSONL field holding reference summaries, for ROUGE.")
@option("--keep-fields", multiple=True, callback=parse_keep, help="Input fields copied to the output (comma list).")
@option("--backend", envvar="DIALOGSUM_BACKEND", show_envvar=True, help="auto, transformers or ctranslate2.")
@option("--device", help="auto, cpu, cuda (each actor sees only its own GPUs).")
@option("--dtype", type=click.Choice(["auto", "float32", "bfloat16"]), help="Weights dtype.")
@option("--quantization", help="CTranslate2 weights or compute type (int8, float32...).")
@option("--threads", type=click.IntRange(0), help="Inference threads per actor; 0: --cpus-per-worker.")
@option("--num-beams", type=click.IntRange(1), help="Beam size  [default: the model's]")
@option("--max-new-tokens", type=click.IntRange(1), help="Summary length cap  [default: the model's]")
@option("--length-penalty", type=float, help="Beam length penalty  [default: the model's]")
@option("--no-repeat-ngram-size", type=click.IntRange(0), help="Block repeated n-grams  [default: the model's]")
@option("--max-source-length", type=click.IntRange(8), help="Source tokens kept  [default: the model's limit]")
@option("--batch-tokens", type=click.IntRange(1), help="Padded source tokens per sub-batch inside a Ray batch.")
@option("--max-batch-size", type=click.IntRange(1), help="Records per sub-batch at most.")
@option("--long", type=click.Choice(["truncate", "chunk"]), help="A dialogue over the model's limit: cut or chunk.")
@option("--long-overlap", type=click.IntRange(0), metavar="TURNS", help="--long chunk: turns repeated.")
@option("--long-target", type=click.IntRange(1), metavar="TOKENS", help="--long chunk: joined summaries cap.")
@option("--on-error", type=click.Choice(["fail", "skip"]), help="Bad record: stop (exit 1) or skip it (exit 3).")
@option("--errors-out", type=click.Path(dir_okay=False), help="JSONL file for skipped records.")
@option("--resume", is_flag=True, help="Skip ids already in --output and append the rest.")
@option("--lock", "lock_file", type=click.Path(dir_okay=False), help="Lock file  [default: OUTPUT.lock]")
@option("--metrics-out", type=click.Path(dir_okay=False), help="Write the final summary here as JSON.")
@option("--trust-remote-code", is_flag=True, help="Run code shipped with a Hub model.")
@option("--allow-pickle", is_flag=True, help="Load pickle (*.bin) weights when no safetensors exist.")
@log_options
def ray_command(**options: Any) -> None:
    """Summarize files (JSONL, text, chat exports) on a Ray cluster: Ray reads them and runs the model actors,
    the JSONL output is written here, in input order, and a rerun with --resume goes on where one stopped.

    Without --address or RAY_ADDRESS a local Ray is started on this machine. On a cluster, the model
    path and the dialogsum-batch install must be the same on every node; the inputs are read on this one.

    \b
      dialogsum-batch ray 'chats/*.jsonl.gz' -m runs/pegasus-samsum -o summaries.jsonl --resume
      RAY_ADDRESS=head:6379 dialogsum-batch ray 'chats/*.jsonl' -o out.jsonl --workers 8 --gpus-per-worker 1
    """
    from ..ray import run_ray_job  # Ray itself is imported only when the job starts

    check_usage(options)
    log = command_log(options)
    progress = not options["quiet"] and stderr_is_terminal()
    # Ray's driver raises KeyboardInterrupt on SIGINT wherever the main thread is.
    with errors_shown(log, options["debug"], INTERRUPTED), library_bars(show=progress):
        code, _ = run_ray_job(job_files(options), build_settings(options), ray_settings(options), log, progress)
    sys.exit(code)


def check_usage(options: dict[str, Any]) -> None:
    if "-" in options["inputs"]:
        raise click.UsageError("dialogsum-batch ray reads files or folders (Ray tasks read them), not stdin")
    if options["errors_out"] and options["on_error"] != "skip":
        raise click.UsageError("--errors-out only applies with --on-error skip")


def build_settings(options: dict[str, Any]) -> RunSettings:
    """The run's settings from the options named as the Python API names them."""
    return run_settings(**{name: options[name] for name in OPTION_FIELDS if name in options})


def ray_settings(options: dict[str, Any]) -> RaySettings:
    return RaySettings(
        address=options["address"],
        workers=options["workers"],
        cpus_per_worker=options["cpus_per_worker"],
        gpus_per_worker=options["gpus_per_worker"],
        batch_size=options["batch_size"],
    )
