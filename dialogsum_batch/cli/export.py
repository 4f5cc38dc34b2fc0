"""``dialogsum-batch export``: a trained model as a self-contained serving folder."""

from __future__ import annotations

from typing import Any

import click

from ..backends.ct2_convert import QUANTIZATIONS
from .common import CONTEXT, command_log, errors_shown, log_options


@click.command("export", context_settings=CONTEXT)
@click.option("--model", "-m", required=True, type=click.Path(), help="Source model folder (safetensors).")
@click.option("--output-dir", required=True, type=click.Path(file_okay=False), help="Serving folder to create.")
@click.option("--format", "format_", type=click.Choice(["hf", "ctranslate2"]), default="hf", help="Folder kind.")
@click.option("--quantization", type=click.Choice(QUANTIZATIONS), help="ctranslate2 weights  [default: int8]")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), help="hf weights  [default: the source's]")
@click.option("--force", is_flag=True, help="Replace --output-dir when it holds a previous export.")
@click.option("--allow-pickle", is_flag=True, help="Read *.bin (pickle) weights when no safetensors exist.")
@log_options
def export(**options: Any) -> None:
    """Export a model as a serving folder: transformers safetensors (hf) or CTranslate2 (model.bin).

    The folder is written aside and renamed into place; it carries a model card. Prints its path.

    \b
      dialogsum-batch export --model runs/pegasus-samsum --format ctranslate2 --output-dir serve/ct2-int8
      dialogsum-batch export --model runs/pegasus-samsum --dtype bfloat16 --output-dir serve/hf-bf16
    """
    from ..export import ExportSettings, export_model

    log = command_log(options)
    settings = ExportSettings(
        source=options["model"],
        output_dir=options["output_dir"],
        format=options["format_"],
        quantization=options["quantization"],
        dtype=options["dtype"],
        force=options["force"],
        allow_pickle=options["allow_pickle"],
    )
    with errors_shown(log, options["debug"]):
        click.echo(export_model(settings, log=log.info))
