"""A transformers folder converted into a CTranslate2 one, and the info file that marks a serving folder.

CTranslate2's converter writes ``model.bin``; the tokenizer and ``generation_config.json`` are copied
beside it so the folder serves alone (CTranslate2 itself reads neither). ``invoke export --format
ctranslate2`` and the conversion cache (``ct2_cache``) both write their folders here, so an export and a
cache entry are the same thing. The source folder is only read; torch and ctranslate2 load lazily.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ModelError, first_line
from ..modelfiles import LOAD_ERRORS, load_failure, read_json
from ..version import __version__

QUANTIZATIONS = ("int8", "int8_float32", "int8_bfloat16", "bfloat16", "float16", "float32")
DEFAULT_QUANTIZATION = "int8"  # what an export is for: CPU serving, ~4x smaller, several times faster
# What serving converts a transformers folder to unless --quantization (or --fast) says otherwise: float32
# keeps transformers fp32's greedy summaries token for token, at 1.4x its speed (bench/results/bench_ct2_cache.md).
SERVING_QUANTIZATION = "float32"
FAST_QUANTIZATION = "int8"  # --fast: 2.5x transformers fp32 greedy; ROUGE-1 -0.3 on the trained tiny model
EXPORT_INFO = "dialogsum_export.json"  # what a serving folder is (format, weights, limits); marks it as ours
INSTALL_CT2 = "pip install ctranslate2"  # a dependency on the platforms it has wheels for
# Config fields CTranslate2's converter reads that transformers 5 no longer writes for configs built in
# code; the values are what these architectures compute (Pegasus: pre-layer-norm, no embedding norm).
CONVERTER_DEFAULTS: dict[str, dict[str, bool]] = {
    "pegasus": {"normalize_before": True, "normalize_embedding": False},
}


def write_ctranslate2(source: Path, staging: Path, quantization: str) -> None:
    """Convert with CTranslate2's converter, then add the tokenizer and decoding settings."""
    converter = make_converter(str(source))
    try:
        converter.convert(str(staging), quantization=quantization, force=True)
    except (*LOAD_ERRORS, NotImplementedError) as exc:
        raise load_failure(f"CTranslate2 cannot convert {source}", exc) from exc
    save_tokenizer(source, staging)
    save_generation_config(source, staging)


def make_converter(source: str) -> Any:
    """A TransformersConverter that fills the config fields the Pegasus loader needs, in memory only."""
    try:
        from ctranslate2.converters import TransformersConverter
    except ImportError as exc:
        raise ModelError(f"exporting to CTranslate2 needs the ctranslate2 package: {INSTALL_CT2}") from exc

    class FilledConfigConverter(TransformersConverter):
        """The loaded model's config gets the missing fields; the files on disk stay as they are."""

        def load_model(self, model_class, model_name_or_path, **kwargs):
            model = super().load_model(model_class, model_name_or_path, **kwargs)
            fill_converter_fields(model.config)
            return model

    return FilledConfigConverter(source)


def fill_converter_fields(config: Any) -> dict[str, bool]:
    """Set the CONVERTER_DEFAULTS fields the config lacks; return what was set."""
    missing = {
        key: value
        for key, value in CONVERTER_DEFAULTS.get(getattr(config, "model_type", ""), {}).items()
        if getattr(config, key, None) is None
    }
    for key, value in missing.items():
        setattr(config, key, value)
    return missing


def save_tokenizer(source: Path, staging: Path) -> None:
    """Re-save the source tokenizer (tokenizer_config.json names its class, so AutoTokenizer finds it)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load the tokenizer from {source}: {first_line(exc)}") from exc
    tokenizer.save_pretrained(staging)


def save_generation_config(source: Path, staging: Path) -> None:
    """generation_config.json from the source, or derived from its config.json as transformers does."""
    from transformers import GenerationConfig

    if (source / "generation_config.json").is_file():
        generation = GenerationConfig.from_pretrained(source)
    else:
        # From the raw config.json, as transformers' own loading does: a loaded PretrainedConfig has already
        # dropped a transformers-4 config's decoding keys (num_beams, max_length, min_length, length_penalty).
        generation = GenerationConfig.from_model_config(read_json(source / "config.json") or {})
    generation.save_pretrained(staging)


# ---------------------------------------------------------------------------- the info file


def write_info(
    folder: Path, source: Path, format: str, quantization: str | None = None, dtype: str | None = None
) -> None:
    """dialogsum_export.json: what this folder is, for the backends and for a later ``export --force``.

    ``quantization`` counts for ``ctranslate2`` (None: DEFAULT_QUANTIZATION), ``dtype`` for ``hf``.
    """
    config = read_json(source / "config.json") or {}
    info = {
        "format": format,
        "quantization": (quantization or DEFAULT_QUANTIZATION) if format == "ctranslate2" else None,
        "dtype": dtype if format == "hf" else None,
        "source": str(source),
        "model_type": config.get("model_type"),
        "max_source_length": config.get("max_position_embeddings"),
        "exported_by": f"dialogsum-batch {__version__}",
    }
    (folder / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def read_info(folder: str | Path) -> dict[str, Any]:
    """dialogsum_export.json when the folder has one (a folder converted elsewhere has not), else {}."""
    data = read_json(Path(folder) / EXPORT_INFO)
    return data if isinstance(data, dict) else {}
