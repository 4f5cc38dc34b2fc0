"""``invoke export`` (serving folders) and ``invoke bench-backends`` (transformers vs CTranslate2 speed)."""

from __future__ import annotations

import shlex
import sys

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

BENCH_HELP = {
    "records": "Synthetic dialogues per measurement",
    "threads": "CPU threads for both backends (0 = every core)",
    "beams": "Comma list of beam sizes to measure, e.g. 1,4",
    "repeats": "Timed runs per measurement; the best counts (steadier on shared cores)",
    "output_dir": "Where the JSON and Markdown results go",
    "work_dir": "Where the benchmark model and its exports are kept between runs [default: $TMPDIR/dialogsum-bench]",
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
    settings = ExportSettings(source=model, output_dir=output_dir, format=format, quantization=quantization or None,
                              dtype=dtype or None, force=bool(force), allow_pickle=bool(allow_pickle))
    try:
        return export_model(settings, log=Log().info)
    except DialogsumError as exc:
        raise Exit(f"error: {exc}", code=exc.exit_code) from exc


@register(help=BENCH_HELP)
def bench_backends(c, records=64, threads=0, beams="1,4", repeats=1, output_dir="bench/results", work_dir=""):
    """Dialogues/s of transformers fp32 vs CTranslate2 fp32 and int8 on CPU, mid-size random Pegasus.

    invoke bench-backends --records 64
    """
    args = ["--records", str(records), "--threads", str(threads), "--beams", str(beams), "--repeats", str(repeats),
            "--output-dir", str(output_dir)] + (["--work-dir", str(work_dir)] if work_dir else [])
    c.run(shlex.join([sys.executable, "bench/bench_backends.py", *args]), pty=False)
