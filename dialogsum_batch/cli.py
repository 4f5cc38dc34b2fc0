"""The ``dialogsum-batch`` command: options in, settings built, the library called, errors mapped."""

from __future__ import annotations

import re
import sys

import click

from . import __version__
from .backends import registry
from .backends.ct2_convert import FAST_QUANTIZATION, QUANTIZATIONS
from .config import (
    DEFAULT_MODEL,
    MODEL_ENV,
    BatchSettings,
    DecodeSettings,
    FieldNames,
    LongSettings,
    ModelSettings,
    RunSettings,
)
from .errors import DialogsumError
from .inference.job import JobFiles, written_files
from .inference.outputs import same_file
from .inference.records import MAX_LINE_BYTES
from .inference.runner import run_job
from .logs import Log, library_bars, stderr_is_terminal

EPILOG = """\b
Exit codes:
  0    every record summarized
  1    failed (bad input with --on-error fail, bad model, I/O error)
  2    usage error
  3    partial: some records were bad and skipped (--on-error skip)
  75   locked: another run is writing the same output
  130  interrupted by SIGINT, 143 by SIGTERM (finished records were written)
"""


def parse_shard(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise click.BadParameter("expected I/N, e.g. 2/4") from None
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


def parse_keep(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(name.strip() for item in value for name in item.split(",") if name.strip())


@click.command(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("inputs", nargs=-1, type=click.Path(allow_dash=True, dir_okay=False))
@click.option(
    "-m",
    "--model",
    default=DEFAULT_MODEL,
    envvar=MODEL_ENV,
    show_envvar=True,
    help="Model folder (transformers or CTranslate2) or Hub id.",
)
@click.option(
    "-o",
    "--output",
    default="-",
    type=click.Path(allow_dash=True, dir_okay=False),
    help="Where the JSONL summaries go; - is stdout.",
)
@click.option(
    "--format",
    "input_format",
    type=click.Choice(["auto", "jsonl", "text"]),
    default="auto",
    help="Input format; auto goes by file suffix, then by the first line.",
)
@click.option(
    "--max-line-bytes",
    default=MAX_LINE_BYTES,
    type=click.IntRange(1),
    show_default=True,
    help="Longer input lines become bad records, read past without holding them in memory.",
)
@click.option("--text-field", default="dialogue", help="JSONL field holding the dialogue.")
@click.option("--id-field", default="id", help="JSONL field holding the record id (else FILE:LINE).")
@click.option("--reference-field", default="summary", help="JSONL field holding reference summaries, for ROUGE.")
@click.option(
    "--keep-fields",
    multiple=True,
    callback=parse_keep,
    help="Input fields copied to the output (comma list, repeatable; * for all).",
)
@click.option(
    "--backend",
    default="auto",
    envvar="DIALOGSUM_BACKEND",
    show_envvar=True,
    callback=parse_backend,
    help="auto, transformers, ctranslate2 or a plugin's; auto serves on the CPU through CTranslate2 float32 "
    "(converted once into the cache; the summaries of transformers fp32), else transformers, saying why.",
)
@click.option("--device", default="auto", callback=parse_device, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--dtype",
    type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
    default="auto",
    help="Weights dtype; auto is bfloat16 on a GPU that has it, else float32.",
)
@click.option("--force-dtype", is_flag=True, help="Allow float16, which makes Pegasus overflow.")
@click.option(
    "--quantization",
    type=click.Choice(QUANTIZATIONS),
    help="CTranslate2 weights: a transformers folder is converted once into the cache with them "
    "(float32 unless set); a CTranslate2 folder loads as this compute type.",
)
@click.option(
    "--fast",
    is_flag=True,
    help=f"Same as --quantization {FAST_QUANTIZATION}: about 1.8x the default's speed on the CPU; summaries may "
    "differ a little (ROUGE-1 -0.3 on the trained tiny model).",
)
@click.option(
    "--threads",
    default=0,
    type=click.IntRange(0),
    help="CPU threads for inference; 0 picks: 1 for small models, else the idle cores.",
)
@click.option("--num-beams", type=click.IntRange(1), help="Beam size  [default: the model's]")
@click.option("--max-new-tokens", type=click.IntRange(1), help="Summary length cap  [default: the model's]")
@click.option("--length-penalty", type=float, help="Beam length penalty  [default: the model's]")
@click.option("--no-repeat-ngram-size", type=click.IntRange(0), help="Block repeated n-grams  [default: the model's]")
@click.option(
    "--max-source-length", type=click.IntRange(8), help="Source tokens kept  [default: 1024 or the model's limit]"
)
@click.option(
    "--batch-tokens", default=BatchSettings.batch_tokens, type=click.IntRange(1), help="Padded source tokens per batch."
)
@click.option(
    "--max-batch-size", default=BatchSettings.max_batch_size, type=click.IntRange(1), help="Records per batch at most."
)
@click.option(
    "--sort-window",
    default=BatchSettings.sort_window,
    type=click.IntRange(1),
    help="Records read ahead and sorted by length.",
)
@click.option(
    "--max-wait",
    default=BatchSettings.max_wait,
    type=click.FloatRange(0),
    metavar="SECONDS",
    help="Live input: batch the records read so far once the oldest has waited this long and no "
    "more is ready; 0 always waits for full windows.",
)
@click.option(
    "--long",
    "long_mode",
    type=click.Choice(["truncate", "chunk"]),
    default=LongSettings.mode,
    help="A dialogue longer than --max-source-length: cut it (flagged truncated), or summarize it in "
    "pieces at turn boundaries and then their joined summaries (chunks: N).",
)
@click.option(
    "--long-overlap",
    default=LongSettings.overlap,
    type=click.IntRange(0),
    metavar="TURNS",
    help="--long chunk: turns repeated at the start of the next piece.",
)
@click.option(
    "--long-target",
    default=LongSettings.target,
    type=click.IntRange(1),
    metavar="TOKENS",
    help="--long chunk: joined piece summaries longer than this are summarized again.",
)
@click.option("--unordered", is_flag=True, help="Write results as batches finish, not in input order.")
@click.option(
    "--on-error",
    type=click.Choice(["fail", "skip"]),
    default="fail",
    help="Bad record: stop (exit 1) or skip it and go on (exit 3).",
)
@click.option("--errors-out", type=click.Path(dir_okay=False), help="JSONL file for skipped records.")
@click.option("--resume", is_flag=True, help="Skip ids already in --output and append the rest.")
@click.option("--lock", "lock_file", type=click.Path(dir_okay=False), help="Lock file  [default: OUTPUT.lock]")
@click.option("--shard", callback=parse_shard, metavar="I/N", help="Keep only shard I of N (by a hash of the id).")
@click.option("--metrics-out", type=click.Path(dir_okay=False), help="Write the final summary here as JSON.")
@click.option("--trust-remote-code", is_flag=True, help="Run code shipped with a Hub model.")
@click.option("--allow-pickle", is_flag=True, help="Load pickle (*.bin) weights when no safetensors exist.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", help="stderr log lines.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr; no progress bar.")
@click.option("--debug", is_flag=True, envvar="DIALOGSUM_DEBUG", help="Show tracebacks for expected errors too.")
@click.version_option(__version__, "--version")
def main(**options) -> None:
    """Summarize chat dialogues in bulk with a fine-tuned Pegasus, JSONL in, JSONL out.

    Reads JSONL records (or plain-text dialogues separated by blank lines) from INPUTS
    or stdin, runs them through the model in length-sorted batches and writes one JSON
    object per record, in input order. Records with a reference get ROUGE scores.

    \b
      cat chats.jsonl | dialogsum-batch -m runs/pegasus-samsum > summaries.jsonl
      dialogsum-batch data/test.jsonl --num-beams 4 --metrics-out metrics.json
      dialogsum-batch 'logs/*.jsonl.gz' -o out.jsonl --resume --on-error skip --errors-out bad.jsonl
    """
    check_usage(options)
    log = Log(options["log_format"], options["quiet"])
    files = job_files(options)
    progress = not options["quiet"] and stderr_is_terminal()
    try:
        with library_bars(show=progress):  # Hub download bars, like ours, only on a watched terminal
            code, _ = run_job(files, build_settings(options), log, progress)
    except DialogsumError as exc:
        if options["debug"]:
            raise
        log.error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # a second signal: stop at once; --resume still finds every whole line
        log.error("interrupted again: stopped at once; rerun with --resume to go on")
        sys.exit(130)
    sys.exit(code)


def check_usage(options: dict) -> None:
    """Flag combinations that cannot work: a usage error (exit 2) before anything starts."""
    if options["resume"] and options["output"] == "-":
        raise click.UsageError("--resume needs -o/--output FILE: stdout cannot be read back")
    if options["errors_out"] and options["on_error"] != "skip":
        raise click.UsageError("--errors-out only applies with --on-error skip")
    if options["dtype"] == "float16" and not options["force_dtype"]:
        raise click.UsageError(
            "--dtype float16 makes Pegasus overflow (blank or NaN output); use bfloat16, or add --force-dtype"
        )
    if options["fast"] and options["quantization"] not in (None, FAST_QUANTIZATION):
        raise click.UsageError(f"--fast is --quantization {FAST_QUANTIZATION}; pass one of them")
    if options["fast"] and options["backend"] == "transformers":
        raise click.UsageError("--fast runs int8 through CTranslate2; it does not apply to --backend transformers")
    check_written_files(job_files(options))


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
    """One frozen RunSettings from the parsed options."""
    model = ModelSettings(
        name=options["model"],
        backend=options["backend"],
        device=options["device"],
        dtype=options["dtype"],
        force_dtype=options["force_dtype"],
        max_source_length=options["max_source_length"],
        trust_remote_code=options["trust_remote_code"],
        allow_pickle=options["allow_pickle"],
        threads=options["threads"],
        quantization=FAST_QUANTIZATION if options["fast"] else options["quantization"],
    )
    decode = DecodeSettings(
        num_beams=options["num_beams"],
        max_new_tokens=options["max_new_tokens"],
        length_penalty=options["length_penalty"],
        no_repeat_ngram_size=options["no_repeat_ngram_size"],
    )
    batch = BatchSettings(
        batch_tokens=options["batch_tokens"],
        max_batch_size=options["max_batch_size"],
        sort_window=options["sort_window"],
        unordered=options["unordered"],
        max_wait=options["max_wait"],
    )
    long = LongSettings(mode=options["long_mode"], overlap=options["long_overlap"], target=options["long_target"])
    fields = FieldNames(text=options["text_field"], id=options["id_field"], reference=options["reference_field"])
    return RunSettings(
        model=model,
        decode=decode,
        batch=batch,
        long=long,
        fields=fields,
        keep_fields=options["keep_fields"],
        on_error=options["on_error"],
        shard=options["shard"],
    )


if __name__ == "__main__":  # pragma: no cover
    main()
