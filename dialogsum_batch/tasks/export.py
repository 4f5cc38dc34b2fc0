"""``invoke export``: a trained model as a self-contained serving folder (transformers or CTranslate2)."""

from __future__ import annotations

from invoke.exceptions import Exit

from . import register

EXPORT_HELP = {
    "model": "Source model folder (a training run's output, safetensors)",
    "format": "hf (safetensors serving folder) or ctranslate2 (model.bin for the CTranslate2 backend)",
    "output_dir": "Serving folder to create (written aside, then renamed into place)",
    "quantization": "ctranslate2 only: int8 (default), int8_float32, int8_bfloat16, bfloat16, float16, float32",
    "dtype": "hf only: float32 or bfloat16 [default: the source's dtype]",
    "force": "Replace OUTPUT_DIR when it holds a previous export",
    "allow_pickle": "Read *.bin (pickle) weights when the source has no safetensors",
}


@register(help=EXPORT_HELP)
def export(c, model="", format="hf", output_dir="", quantization=None, dtype=None, force=False, allow_pickle=False):
    """Export a model as a self-contained serving folder (transformers safetensors or CTranslate2).

    invoke export --model runs/pegasus-samsum --format ctranslate2 --output-dir serve/ct2-int8
    invoke export --model runs/pegasus-samsum --format hf --dtype bfloat16 --output-dir serve/hf-bf16
    """
    from ..errors import DialogsumError
    from ..export import ExportSettings, export_model
    from ..logs import Log

    if not model or not output_dir:
        raise Exit("export: --model DIR and --output-dir OUT are required", code=2)
    settings = ExportSettings(
        source=model,
        output_dir=output_dir,
        format=format,
        quantization=quantization or None,
        dtype=dtype or None,
        force=bool(force),
        allow_pickle=bool(allow_pickle),
    )
    try:
        return export_model(settings, log=Log().info)
    except DialogsumError as exc:
        raise Exit(f"error: {exc}", code=exc.exit_code) from exc
