"""Export a trained model as a self-contained serving folder, for transformers or CTranslate2.

* ``hf``: safetensors weights (optionally cast to bfloat16), the tokenizer, ``generation_config.json``
  and a model card that carries the run's evaluation metrics when its folder has them.
* ``ctranslate2``: CTranslate2's own converter, quantized as asked (int8 by default), with the
  tokenizer and ``generation_config.json`` copied beside ``model.bin`` so that
  ``dialogsum-batch --model OUT`` serves it alone (CTranslate2 itself ignores the decoding settings).
  The conversion is ``backends.ct2_convert``'s, the one the conversion cache uses too.

The export is written to a hidden staging folder beside OUT and renamed into place at the end, so
a failed or interrupted export never leaves a half-written serving folder behind. The source
folder is only read.

\b
    invoke export --model runs/pegasus-samsum --format ctranslate2 --output-dir serve/ct2-int8
    invoke export --model runs/pegasus-samsum --format hf --dtype bfloat16 --output-dir serve/hf-bf16
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cards, files
from .backends.ct2_convert import (  # QUANTIZATIONS stays importable from here: the CLI's --quantization choices
    DEFAULT_QUANTIZATION,
    EXPORT_INFO,
    QUANTIZATIONS,
    save_tokenizer,
    write_ctranslate2,
    write_info,
)
from .errors import ConfigError
from .hub import is_hub_id
from .logs import Say, library_bars
from .modelfiles import LOAD_ERRORS, Advice, check_transformers_folder, load_failure, read_json
from .version import __version__

FORMATS = ("hf", "ctranslate2")
HF_DTYPES = ("float32", "bfloat16")  # float16 is left out: Pegasus overflows in it
METRIC_FILES = ("metrics.json", "eval_results.json", "all_results.json", "test_results.json")
LOCAL_LINK = re.compile(r"!?\[(?P<label>[^\]]*)\]\((?P<target>(?![a-z][a-z0-9+.-]*:|#|/)[^)\s]+)\)")  # [x](file)
HUB_LINK = re.compile(r"\[([^\]]+)\]\(https://huggingface\.co/+\1\)")  # [x](https://huggingface.co/x)
EXPORT_ADVICE = Advice(
    pickle="pass --allow-pickle to read them anyway", ctranslate2="export from the transformers model instead"
)


@dataclass(frozen=True)
class ExportSettings:
    """What to export, where, and in which form."""

    source: str  # a transformers seq2seq model folder (a training run's output)
    output_dir: str  # the serving folder to create
    format: str = "hf"  # hf | ctranslate2
    quantization: str | None = None  # ctranslate2 only; None means DEFAULT_QUANTIZATION
    dtype: str | None = None  # hf only: float32 | bfloat16; None keeps the source's dtype
    force: bool = False  # replace OUT when it holds a previous export
    allow_pickle: bool = False  # read *.bin (pickle) weights when the source has no safetensors

    def check(self) -> None:
        """ConfigError for values or combinations that cannot work."""
        if self.format not in FORMATS:
            raise ConfigError(f"unknown export format '{self.format}'; choose one of {', '.join(FORMATS)}")
        if self.format == "hf" and self.quantization:
            raise ConfigError("--quantization applies to --format ctranslate2; for hf use --dtype")
        if self.format == "ctranslate2" and self.dtype:
            raise ConfigError("--dtype applies to --format hf; for ctranslate2 use --quantization")
        if self.quantization and self.quantization not in QUANTIZATIONS:
            raise ConfigError(f"unknown quantization '{self.quantization}'; choose one of {', '.join(QUANTIZATIONS)}")
        if self.dtype and self.dtype not in HF_DTYPES:
            raise ConfigError(f"unknown dtype '{self.dtype}' for hf export; choose one of {', '.join(HF_DTYPES)}")


# ---------------------------------------------------------------------------- entry point


def export_model(settings: ExportSettings, log: Say | None = None) -> Path:
    """Write the serving folder described by ``settings`` and return its path."""
    settings.check()
    source = Path(settings.source).expanduser()
    out = output_path(settings.output_dir)
    check_transformers_folder(source, settings.allow_pickle, EXPORT_ADVICE)
    check_output(out, source, settings.force)
    if log:
        log(f"exporting {source} as {describe_format(settings)}")
    with staging_dir(out) as staging, library_bars():  # no tqdm bars under cron or CI
        if settings.format == "hf":
            write_hf(source, staging, settings.dtype, settings.allow_pickle)
        else:
            write_ctranslate2(source, staging, settings.quantization or DEFAULT_QUANTIZATION)
        write_card(staging, source, settings)
        write_info(staging, source, settings.format, settings.quantization, settings.dtype)
        replace_dir(staging, out)
    if log:
        log(f"exported {source} as {describe_format(settings)} to {out}")
    return out


def describe_format(settings: ExportSettings) -> str:
    if settings.format == "hf":
        return f"hf ({settings.dtype or 'source dtype'})"
    return f"ctranslate2 ({settings.quantization or DEFAULT_QUANTIZATION})"


# ---------------------------------------------------------------------------- checks and staging


def output_path(raw: str) -> Path:
    """OUT made absolute with ``.`` and ``..`` worked out, so its parent really is the folder around it
    (``serve/..`` would otherwise put the staging folder inside the folder it replaces)."""
    out = Path(os.path.abspath(Path(raw).expanduser()))
    if out == out.parent:
        raise ConfigError(f"output folder {raw} is a filesystem root; name a folder to create")
    return out


def check_output(out: Path, source: Path, force: bool) -> None:
    """Refuse to write over the source, over a folder that is not a previous export, or through a link."""
    if out.is_symlink():  # --force would replace what the link points to, which this export never made
        raise ConfigError(f"output {out} is a symbolic link; give the real folder, or remove the link first")
    resolved, src = out.resolve(), source.resolve()
    if resolved == src or resolved in src.parents:
        raise ConfigError(f"output folder {out} would overwrite the source model {source}")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output {out} exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not force:
        raise ConfigError(f"output folder {out} is not empty; pass --force to replace a previous export")
    if not (out / EXPORT_INFO).is_file():
        raise ConfigError(f"output folder {out} is not a previous export (no {EXPORT_INFO}); remove it yourself")


@contextmanager
def staging_dir(out: Path) -> Iterator[Path]:
    """A fresh hidden folder beside ``out``, removed again if the export fails."""
    out.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{out.name}.partial-"
    if out.resolve() in (out.parent / prefix).resolve().parents:  # out's parent is a link back into out
        raise ConfigError(f"the staging folder {out.parent / prefix}* would lie inside {out}, the folder it replaces")
    with files.staging_dir(out.parent, prefix) as staging:
        yield staging


def replace_dir(staging: Path, out: Path) -> None:
    """Move the finished export into place; an old export or empty folder goes, nothing else.

    ``check_output`` looked at OUT before the export began; what is there now may differ. So the old folder
    is checked where ``publish_dir`` moved it aside, and only then deleted; anything else is moved back and
    refused.
    """
    if out.is_symlink():
        raise ConfigError(f"output {out} became a symbolic link during the export; left as it is")
    if not files.publish_dir(staging, out, is_previous_export):
        raise ConfigError(
            f"output folder {out} changed during the export and is not a previous export "
            f"(no {EXPORT_INFO}); left as it is"
        )


def is_previous_export(folder: Path) -> bool:
    """A real folder (not a link) that is empty or holds our marker as a plain file."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    marker = folder / EXPORT_INFO
    return (marker.is_file() and not marker.is_symlink()) or not any(folder.iterdir())


# ---------------------------------------------------------------------------- hf


def write_hf(source: Path, staging: Path, dtype: str | None, allow_pickle: bool) -> None:
    """Safetensors weights (cast when asked), tokenizer and generation config, nothing else."""
    import torch
    from transformers import AutoModelForSeq2SeqLM

    torch_dtype = getattr(torch, dtype) if dtype else "auto"
    try:
        model = AutoModelForSeq2SeqLM.from_pretrained(
            source, dtype=torch_dtype, use_safetensors=None if allow_pickle else True
        )
    except LOAD_ERRORS as exc:  # a hostile pickle is refused by torch's weights_only loading: one line too
        raise load_failure(f"cannot load model from {source}", exc) from exc
    with library_bars(show=False):  # a bar for writing one file says nothing
        model.save_pretrained(staging)  # safetensors; writes generation_config.json as well
    save_tokenizer(source, staging)


# ---------------------------------------------------------------------------- card


def run_folders(source: Path) -> list[Path]:
    """Where a run's files lie: the model folder, then for a checkpoint the run folder above it."""
    return [source] + ([source.parent] if source.name.startswith("checkpoint-") else [])


def find_metrics(source: Path) -> dict[str, dict[str, Any]]:
    """Evaluation files of the run: in the model folder, or in the run folder above a checkpoint."""
    found: dict[str, dict[str, Any]] = {}
    for folder in run_folders(source):
        for name in METRIC_FILES:
            data = read_json(folder / name)
            if isinstance(data, dict) and name not in found:
                found[name] = data
    return found


def metric_rows(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(metric, value) rows: ROUGE means with their intervals (metrics.json), else numeric fields."""
    rouge = data.get("rouge")
    if isinstance(rouge, Mapping):
        return [(name, format_metric(value)) for name, value in rouge.items()]
    return [
        (name, format_metric(value))
        for name, value in data.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]


def format_metric(value: Any) -> str:
    if isinstance(value, Mapping) and "mean" in value:
        interval = f" [{value['low']:.2f}, {value['high']:.2f}]" if "low" in value and "high" in value else ""
        return f"{value['mean']:.2f}{interval}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def metrics_section(metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """A Markdown table per metrics file; a line saying there are none otherwise."""
    if not metrics:
        return "## Evaluation\n\nNo evaluation results were found beside the source model.\n"
    parts = ["## Evaluation\n"]
    for name, data in metrics.items():
        where = data.get("data") if isinstance(data.get("data"), Mapping) else None
        about = f" ({where.get('source')}, split {where.get('split')})" if where else ""
        rows = metric_rows(data)
        parts.append(f"From `{name}`{about}:\n\n| metric | value |\n|---|---|")
        parts.extend(f"| {metric} | {value} |" for metric, value in rows)
        parts.append("")
    return "\n".join(parts) + "\n"


def usage_section(settings: ExportSettings) -> str:
    name = Path(settings.output_dir).name
    if settings.format == "hf":
        code = cards.transformers_usage(name)
    else:
        code = (
            f"import ctranslate2\nfrom transformers import AutoTokenizer\n\n"
            f'tokenizer = AutoTokenizer.from_pretrained("{name}")\n'
            f'translator = ctranslate2.Translator("{name}", compute_type="default")\n'
            'tokens = tokenizer.convert_ids_to_tokens(tokenizer.encode("Anna: are we still on for 7?"))\n'
            "result = translator.translate_batch([tokens], beam_size=1, max_decoding_length=63)\n"
            "ids = tokenizer.convert_tokens_to_ids(result[0].hypotheses[0])\n"
            "print(tokenizer.decode(ids, skip_special_tokens=True))"
        )
    return cards.use_section(name, code)


def source_card_body(source: Path, exported: Path | None = None) -> str:
    """The source's README.md without its YAML front matter (kept: it says what the model is).

    Links to ``huggingface.co/<local path>`` that older run cards built from a local base model are
    turned back into the plain path: that page does not exist. So are links and images to files of the
    run folder that the export does not carry (``training_curves.png``): they would be broken.
    """
    _, text = cards.split_card(source)
    text = HUB_LINK.sub(lambda m: m.group(0) if is_hub_id(m.group(1)) else f"`{m.group(1)}`", text)
    if exported is not None:
        text = LOCAL_LINK.sub(lambda m: local_link(m, exported), text)
    return text.strip()


def local_link(match: re.Match[str], exported: Path) -> str:
    """A Markdown link or image to a file beside the card: kept when the export has the file, else its text."""
    label, target = match.group("label"), match.group("target")
    if (exported / target).exists():
        return match.group(0)
    return f"{label} (`{target}` in the source run folder)"


def card_metadata(source: Path, settings: ExportSettings, metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Front matter: the source's lineage, license and training data (Hub ids only) and the evaluation results."""
    origin = cards.read_front_matter(source)
    run = run_config(source)
    # The run's card says what it was trained on (its data was there to check); only a folder without a card
    # falls back to train_config.json, whose relative path may name nothing from here.
    trained_on = (origin.get("datasets") or []) if origin else [cards.hub_dataset_id(run.get("data"))]
    return cards.metadata(
        Path(settings.output_dir).name,
        library="transformers" if settings.format == "hf" else "ctranslate2",
        license=origin.get("license"),
        base_model=base_model_of(source, origin),
        datasets=[trained_on] if isinstance(trained_on, str) else trained_on,
        results=evaluation_results(metrics, origin, run),
    )


def base_model_of(source: Path, origin: Mapping[str, Any]) -> str | None:
    """The Hub model this export derives from: the source itself when it is a Hub snapshot, else the
    base model its card names (a local run folder has no Hub page of its own)."""
    named = origin.get("base_model")
    named = named if isinstance(named, str) and is_hub_id(named) else None
    return cards.hub_model_id(source) or named


def run_config(source: Path) -> dict[str, Any]:
    """train_config.json of the run the source comes from (the folder, or the run above a checkpoint)."""
    for folder in run_folders(source):
        found = read_json(folder / "train_config.json")
        if isinstance(found, dict):
            return found
    return {}


def evaluation_results(
    metrics: Mapping[str, Mapping[str, Any]], origin: Mapping[str, Any], run: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """model-index results: ``invoke evaluate``'s metrics.json; else the run's validation scores, as its
    card states them or, from an older card without them, as eval_results.json and train_config.json do."""
    scored = metrics.get("metrics.json")
    system = scored.get("systems", {}).get("model") if scored and "systems" in scored else scored
    where = scored.get("data") if scored else None
    if system and isinstance(where, Mapping) and isinstance(system.get("rouge"), Mapping):
        dataset = cards.dataset_entry(where.get("source"), where.get("split") or "test", limit=where.get("limit"))
        result = cards.rouge_result(system["rouge"], dataset) if dataset else None
        if result:
            return [result]
    stated = [
        result
        for entry in origin.get("model-index") or []
        if isinstance(entry, Mapping)
        for result in entry.get("results") or []
        if isinstance(result, Mapping)
    ]
    if stated:
        return stated
    trainer = metrics.get("eval_results.json")
    split = run.get("eval_split", "validation")
    result = cards.validation_result(trainer, run.get("data"), split, run.get("synthetic_validation") or 0)
    return [result] if result else []


def write_card(staging: Path, source: Path, settings: ExportSettings) -> None:
    """README.md: Hub metadata, what was exported from what, how to use it, and the evaluation figures."""
    metrics = find_metrics(source)
    metadata = card_metadata(source, settings, metrics)
    origin = cards.model_link(cards.hub_model_id(source), f"the local folder `{source}`")
    body = [
        f"# {Path(settings.output_dir).name}\n",
        f"Exported by dialogsum-batch {__version__} from {origin} as {describe_format(settings)}.\n",
        usage_section(settings),
        metrics_section(metrics),
    ]
    original = source_card_body(source, staging)
    if original:
        body.append(f"## Source model card\n\n{original}\n")
    cards.write_card(staging, metadata, "\n".join(body))
