"""The human-facing files of a run folder: config, metric history, curves and the model card."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import cards, rouge
from ..plots import Panel, Series, plot_lines
from ..version import __version__
from .config import TINY_MODEL, TrainConfig

CONFIG_FILE = "train_config.json"
HISTORY_FILE = "metrics.jsonl"
CURVES_FILE = "training_curves.png"


@dataclass(frozen=True)
class RunSummary:
    """What the card reports about a finished run."""

    train_records: int
    eval_records: int
    steps: int
    train_metrics: Mapping[str, float]
    eval_metrics: Mapping[str, float]  # final evaluation with the saved decoding; empty without one
    best_checkpoint: str | None
    device: str  # e.g. "cuda (NVIDIA H200), bf16" or "cpu"
    processes: int


def write_json(path: Path, payload: Any) -> Path:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def write_config(run_dir: Path, config: TrainConfig) -> Path:
    """The resolved config, as the run used it, with the package version."""
    run_dir.mkdir(parents=True, exist_ok=True)
    return write_json(run_dir / CONFIG_FILE, {**config.to_dict(), "dialogsum_batch_version": __version__})


def write_history(run_dir: Path, log_history: Sequence[Mapping[str, Any]]) -> Path:
    """Every logged entry (training loss lines and evaluations), one JSON object a line."""
    lines = [json.dumps(dict(entry), ensure_ascii=False) for entry in log_history]
    path = run_dir / HISTORY_FILE
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _points(log_history: Sequence[Mapping[str, Any]], key: str) -> list[tuple[float, float]]:
    return [(entry["step"], float(entry[key])) for entry in log_history if key in entry and "step" in entry]


def history_panels(log_history: Sequence[Mapping[str, Any]]) -> list[Panel]:
    """A loss panel (train, validation) and, when there were evaluations, a ROUGE panel."""
    loss = Panel(
        "Loss",
        "cross-entropy",
        [Series("train", _points(log_history, "loss")), Series("validation", _points(log_history, "eval_loss"))],
    )
    curves = [Series(key, _points(log_history, f"eval_{key}")) for key in rouge.SHORT_TYPES]
    if not any(series.points for series in curves):
        return [loss]
    return [loss, Panel("Validation ROUGE (F x100)", "ROUGE", curves)]


def write_curves(run_dir: Path, log_history: Sequence[Mapping[str, Any]], title: str) -> Path:
    """Loss and ROUGE over optimizer steps, as a PNG."""
    return plot_lines(run_dir / CURVES_FILE, history_panels(log_history), xlabel="optimizer step", title=title)


def _data_lines(config: TrainConfig, summary: RunSummary) -> list[str]:
    lines = []
    if config.data:
        lines.append(f"- corpus: `{config.data}` (splits `{config.train_split}` / `{config.eval_split}`)")
    if config.project_data:
        lines.append("- the project's example chats (`data/*.jsonl`), added to training")
    if config.synthetic_train or config.synthetic_validation:
        lines.append(
            f"- synthetic chats (`dialogsum_batch.fixtures.synthetic`): {config.synthetic_train} "
            f"for training, {config.synthetic_validation} for validation"
        )
    lines.append(f"- {summary.train_records} training and {summary.eval_records} validation records")
    return lines


def _recipe_rows(config: TrainConfig, summary: RunSummary) -> list[tuple[str, str]]:
    length = f"{config.max_steps} steps" if config.max_steps > 0 else f"{config.num_train_epochs:g} epochs"
    batch = (
        f"{config.per_device_train_batch_size} x {config.gradient_accumulation_steps} accumulation"
        f" x {summary.processes} process(es) = {config.effective_batch_size * summary.processes}"
    )
    return [
        ("length", f"{length} ({summary.steps} optimizer steps run)"),
        (
            "optimizer",
            (
                f"{config.optimizer}, lr {config.learning_rate:g} {config.lr_scheduler_type}, "
                f"warmup {config.warmup_steps:g}, weight decay {config.weight_decay:g}"
            ),
        ),
        ("batch", batch),
        ("label smoothing", f"{config.label_smoothing:g}"),
        ("lengths", f"source {config.max_source_length}, target {config.max_target_length} tokens"),
        ("device", summary.device),
        ("seed", str(config.seed)),
    ]


def _results_lines(summary: RunSummary, config: TrainConfig) -> list[str]:
    lines = [
        (
            f"- training loss {summary.train_metrics.get('train_loss', float('nan')):.4f} "
            f"in {summary.train_metrics.get('train_runtime', 0):.0f} s"
        )
    ]
    scores = summary.eval_metrics
    if scores:
        figures = rouge.figures(scores, prefix="eval_")
        lines.append(f"- validation {rouge.heading()} (F x100, saved decoding): {figures}")
        lines.append(f"- best checkpoint by {config.metric_for_best_model}: `{summary.best_checkpoint}`")
    else:
        lines.append("- no validation split: the weights are those of the last step")
    return lines


def _decoding_text(config: TrainConfig) -> str:
    search = (
        f"beam search with {config.num_beams} beams, length penalty {config.length_penalty:g}"
        if config.num_beams > 1
        else "greedy search"
    )
    repeat = f"no repeated {config.no_repeat_ngram_size}-grams" if config.no_repeat_ngram_size else "repeats allowed"
    return (
        f"{search}; {config.min_length} to {config.max_new_tokens} new tokens; {repeat}. "
        "`dialogsum-batch` uses these unless its decoding options override them."
    )


def base_model_id(config: TrainConfig) -> str | None:
    """The base model's Hub id; None for the tiny model and for local folders (no Hub page to point at)."""
    return None if config.base_model == TINY_MODEL else cards.hub_model_id(config.base_model)


def _base_text(config: TrainConfig) -> str:
    if config.base_model == TINY_MODEL:
        return "a tiny random-weight Pegasus (dialogsum_batch.fixtures.tiny)"
    return cards.model_link(base_model_id(config), f"the local model folder `{config.base_model}`")


def card_metadata(config: TrainConfig, summary: RunSummary) -> dict[str, Any]:
    """The card's front matter: lineage (Hub ids only), training data and validation ROUGE as model-index."""
    local_base = Path(config.base_model).expanduser()
    base_card = cards.read_front_matter(local_base) if config.base_model != TINY_MODEL and local_base.is_dir() else {}
    # The corpus lacks the eval split when the synthetic chats account for every validation record.
    corpus = config.data if summary.eval_records > config.synthetic_validation else ""
    result = cards.validation_result(summary.eval_metrics, corpus, config.eval_split, config.synthetic_validation)
    return cards.metadata(
        Path(config.output_dir).name,
        library="transformers",
        license=base_card.get("license"),
        base_model=base_model_id(config),
        datasets=[cards.hub_dataset_id(config.data)],
        results=[result],
    )


def card_body(config: TrainConfig, summary: RunSummary) -> str:
    """The card's Markdown: data, recipe, decoding, results, usage."""
    recipe = "\n".join(f"| {name} | {value} |" for name, value in _recipe_rows(config, summary))
    return f"""# {Path(config.output_dir).name}

Fine-tuned from {_base_text(config)} for chat-dialogue summarization by `invoke finetune`
(dialogsum-batch {__version__}). The resolved settings are in
`{CONFIG_FILE}`; the full metric history is in `{HISTORY_FILE}` and `trainer_state.json`.

## Data

{chr(10).join(_data_lines(config, summary))}

## Recipe

| setting | value |
|---|---|
{recipe}

## Decoding (`generation_config.json`)

{_decoding_text(config)}

## Results

{chr(10).join(_results_lines(summary, config))}

![loss and ROUGE over training]({CURVES_FILE})

{cards.use_section(config.output_dir, cards.transformers_usage(config.output_dir))}"""


def model_card(config: TrainConfig, summary: RunSummary) -> str:
    """README.md for the run folder, as ``write_card`` writes it: Hub metadata, then the body."""
    return cards.card_text(card_metadata(config, summary), card_body(config, summary))


def write_card(run_dir: Path, config: TrainConfig, summary: RunSummary) -> Path:
    """The run folder's model card (README.md)."""
    return cards.write_card(run_dir, card_metadata(config, summary), card_body(config, summary))
