"""``dialogsum-batch ray``: the command's JSONL job on a Ray cluster (or a local Ray), options in, job run.

The Click group registers ``ray_command``; ``python -m dialogsum_batch.ray`` runs it on its own.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from ..backends.ct2_convert import QUANTIZATIONS
from ..config import MODEL_ENV, RaySettings, RunSettings, run_settings
from ..logs import library_bars, stderr_is_terminal
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

INTERRUPTED = "interrupted: the rows written are whole; rerun with --resume to go on"


@click.command("ray", epilog=EPILOG, context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, required=True, type=click.Path())  # a folder: an unpacked Slack export
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="JSONL file the summaries go to.")
@setting_option(
    "-m", "--model", envvar=MODEL_ENV, show_envvar=True, help="Model folder or Hub id, as every node sees it."
)
@click.option("--address", envvar="RAY_ADDRESS", show_envvar=True, help="Ray cluster to run on  [default: a local Ray]")
@click.option("--workers", default=RaySettings.workers, type=click.IntRange(0), help="Model actors; 0: as many as fit.")
@click.option(
    "--cpus-per-worker",
    default=RaySettings.cpus_per_worker,
    type=click.FloatRange(0, min_open=True),
    help="Logical CPUs per actor, also its inference threads (rounded up).",
)
@click.option(
    "--gpus-per-worker",
    default=RaySettings.gpus_per_worker,
    type=click.FloatRange(0),
    help="GPUs per actor (0.5: two actors share one).",
)
@click.option(
    "--batch-size", default=RaySettings.batch_size, type=click.IntRange(1), help="Rows Ray hands an actor at once."
)
@input_options
@setting_option("--backend", envvar="DIALOGSUM_BACKEND", show_envvar=True)
@setting_option("--device", help="auto, cpu, cuda (each actor sees only its own GPUs).")
@setting_option("--dtype", type=click.Choice(["auto", "float32", "bfloat16"]))
@setting_option("--quantization", type=click.Choice(QUANTIZATIONS))
@setting_option("--threads", type=click.IntRange(0), help="Inference threads per actor; 0: --cpus-per-worker.")
@decoding_options
@setting_option("--max-source-length", type=click.IntRange(8))
@batching_options
@long_options
@setting_option("--on-error", type=click.Choice(["fail", "skip"]))
@output_options
@setting_option("--trust-remote-code", is_flag=True)
@setting_option("--allow-pickle", is_flag=True)
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
    check_errors_out(options)


def build_settings(options: dict[str, Any]) -> RunSettings:
    """The run's settings from the options named as the Python API names them."""
    return run_settings(**settings_options(options))


def ray_settings(options: dict[str, Any]) -> RaySettings:
    return RaySettings(
        address=options["address"],
        workers=options["workers"],
        cpus_per_worker=options["cpus_per_worker"],
        gpus_per_worker=options["gpus_per_worker"],
        batch_size=options["batch_size"],
    )
