"""Evaluate a model, an extractive baseline, or both, on a corpus split: ROUGE you can trust.

Summaries come from the batch engine (the same code path as ``dialogsum-batch``) or from a
baseline in :mod:`dialogsum_batch.baselines`; ROUGE from :mod:`dialogsum_batch.rouge` (HF
run_summarization conventions, F x100, best reference per ROUGE type). Each system gets a
mean and a seeded percentile-bootstrap interval per ROUGE type; with the same seed and the
same records, every system is resampled with the same indices, so intervals are comparable.

Written into the output folder:

* ``predictions.jsonl``: one row per record (id, dialogue, reference, references, summary, rouge,
  lengths); with a model and a baseline, the baseline's rows go to
  ``predictions-<baseline>.jsonl``;
* ``metrics.json``: the primary system (the model if given, else the baseline) at the top
  level, and every system under ``systems``;
* ``report.md``: a short table, systems side by side;
* ``rouge_by_length.png``: per-record ROUGE against dialogue length, with binned means.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from . import rouge
from .backends import Backend
from .baselines import BASELINES
from .config import EVAL_BOOTSTRAP, EVAL_OUTPUT_DIR, EVAL_SPLIT, RunSettings, run_settings
from .errors import ConfigError, DataError, InputError
from .inference.records import Record
from .inference.summarizer import Summarizer
from .logs import Say
from .plots import new_figure, save_figure

MODEL_SYSTEM = "model"
PLOT_FILE = "rouge_by_length.png"
PREDICTIONS_FILE = "predictions.jsonl"
METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
CONFIDENCE = 0.95
# ROUGE-1 / ROUGE-2 of the baselines on SAMSum test in Gliwa et al. (2019), Table 2.
PAPER_SAMSUM_TEST = {"lead3": (31.40, 8.68), "longest3": (32.46, 10.27)}

# ---------------------------------------------------------------------------- inputs


def make_settings(model: str | None, **options: Any) -> RunSettings:
    """The RunSettings a ``dialogsum-batch`` run with the same options would use (``config.OPTION_FIELDS``)."""
    return run_settings(**({"model": model} if model else {}), **options)


def load_rows(
    data: str | Path, split: str = "test", limit: int | None = None, log: Say | None = None
) -> list[dict[str, Any]]:
    """The rows of one split of anything ``load_corpus`` reads; a single file is that split."""
    from .corpora import load_corpus  # datasets is heavy: import it only when data is read

    corpus = load_corpus(str(data), splits=split, log=log)
    dataset = next(iter(corpus.values()))
    if limit is not None:
        dataset = dataset.select(range(min(limit, len(dataset))))
    return dataset.to_list()


def rows_to_records(rows: Iterable[Mapping[str, Any]], source: str = "data") -> list[Record]:
    """Records for the engine; references from ``references`` when present, else ``[summary]``."""
    records = []
    for index, row in enumerate(rows):
        if not isinstance(row.get("dialogue"), str) or not row["dialogue"].strip():
            raise InputError(source, index + 1, "field 'dialogue' is missing or empty")
        references = [r for r in (row.get("references") or [row.get("summary")]) if isinstance(r, str) and r.strip()]
        if not references:
            raise InputError(source, index + 1, "no reference summary ('summary' or 'references')")
        record_id = str(row.get("id") or f"{source}:{index + 1}")
        records.append(Record(index, record_id, row["dialogue"], tuple(references), source, index + 1))
    return records


# ---------------------------------------------------------------------------- systems


def model_predictions(records: Sequence[Record], summarizer: Summarizer) -> list[dict[str, Any]]:
    """Scored summaries from the batch engine (as ``dialogsum-batch`` runs it), in record order."""
    predictions = []
    for outcome in summarizer.engine().run(records):
        if outcome.error is not None:
            raise outcome.error
        record = records[outcome.position]
        predictions.append(_prediction(record, outcome.summary or "", outcome.tokens, outcome.truncated))
    return predictions


def baseline_predictions(records: Sequence[Record], baseline: str) -> list[dict[str, Any]]:
    """Summaries from an extractive baseline (``lead3`` or ``longest3``); no tokens, no truncation."""
    if baseline not in BASELINES:
        raise ConfigError(f"unknown baseline '{baseline}'; known: {', '.join(sorted(BASELINES))}")
    extract = BASELINES[baseline]
    return [_prediction(record, extract(record.dialogue), None, False) for record in records]


def _prediction(record: Record, summary: str, tokens: int | None, truncated: bool) -> dict[str, Any]:
    """One predictions.jsonl row, scored (full precision) against the record's references."""
    return {
        "id": record.id,
        "dialogue": record.dialogue,
        "reference": record.references[0],  # named as in the command's output: the first, always a string
        "references": list(record.references),
        "summary": summary,
        "rouge": rouge.score(summary, record.references),
        "dialogue_words": len(record.dialogue.split()),
        "words": len(summary.split()),
        "tokens": tokens,
        "truncated": truncated,
    }


# ---------------------------------------------------------------------------- metrics


def summarize_predictions(
    predictions: Sequence[dict[str, Any]], bootstrap: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Mean and bootstrap interval per ROUGE type, record count, summary lengths, truncations."""
    if not predictions:
        raise DataError("no records to evaluate")
    tokens = [p["tokens"] for p in predictions if p["tokens"] is not None]
    words = [p["words"] for p in predictions]
    return {
        "records": len(predictions),
        "rouge": rouge.bootstrap_interval([p["rouge"] for p in predictions], bootstrap, seed, CONFIDENCE),
        "length": {
            "words": {"mean": float(np.mean(words)), "max": int(max(words))},
            "tokens": {"mean": float(np.mean(tokens)), "max": int(max(tokens))} if tokens else None,
        },
        "truncated": sum(1 for p in predictions if p["truncated"]),
        "multi_reference": sum(1 for p in predictions if len(p["references"]) > 1),
    }


def build_metrics(
    systems: Mapping[str, dict[str, Any]],
    *,
    model: str | None,
    baseline: str | None,
    data: str,
    split: str,
    generation: dict[str, Any] | None,
    bootstrap: int,
    seed: int,
    limit: int | None,
) -> dict[str, Any]:
    """metrics.json: the primary system's figures at the top level, all systems under ``systems``."""
    primary = MODEL_SYSTEM if MODEL_SYSTEM in systems else next(iter(systems))
    return {
        **systems[primary],
        "system": primary,
        "model": model,
        "baseline": baseline,
        "data": {"source": data, "split": split, "limit": limit},
        "generation": generation,
        "splitter": rouge.SPLITTER,
        "bootstrap": {"resamples": bootstrap, "seed": seed, "confidence": CONFIDENCE, "method": "percentile"},
        "rouge_conventions": "rouge_score, use_stemmer=True, F-measure x100, best reference per type",
        "systems": dict(systems),
    }


# ---------------------------------------------------------------------------- outputs


def write_predictions(path: Path, predictions: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line, UTF-8 kept readable."""
    with path.open("w", encoding="utf-8") as handle:
        for row in predictions:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _cell(interval: Mapping[str, float]) -> str:
    return f"{interval['mean']:.2f} [{interval['low']:.2f}, {interval['high']:.2f}]"


def write_report(path: Path, metrics: Mapping[str, Any]) -> None:
    """report.md: what was evaluated, then one table row per system, side by side."""
    data = metrics["data"]
    lines = [
        "# Evaluation",
        "",
        f"- data: `{data['source']}`, split `{data['split']}`" + (f", first {data['limit']}" if data["limit"] else ""),
        f"- model: `{metrics['model']}`" if metrics["model"] else "- model: none (baseline only)",
        f"- ROUGE: F x100, rouge_score with stemming, best of the references; rougeLsum sentences by "
        f"`{metrics['splitter']}`; [low, high] is a {metrics['bootstrap']['confidence']:.0%} bootstrap interval "
        f"({metrics['bootstrap']['resamples']} resamples, seed {metrics['bootstrap']['seed']})",
        "",
        "| system | records | " + " | ".join(rouge.ROUGE_LABELS.values()) + " | mean words | max words | truncated |",
        "|---|---:|" + "---:|" * len(rouge.ROUGE_LABELS) + "---:|---:|---:|",
    ]
    for name, system in metrics["systems"].items():
        cells = [_cell(system["rouge"][t]) for t in rouge.ROUGE_TYPES]
        words = system["length"]["words"]
        lines.append(
            f"| {name} | {system['records']} | "
            + " | ".join(cells)
            + f" | {words['mean']:.1f} | {words['max']} | {system['truncated']} |"
        )
    papers = [f"{n} {r1:.2f} / {r2:.2f}" for n, (r1, r2) in PAPER_SAMSUM_TEST.items() if n in metrics["systems"]]
    if papers:
        lines += ["", "SAMSum paper (Gliwa et al. 2019), SAMSum test, ROUGE-1 / ROUGE-2: " + "; ".join(papers) + "."]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def binned_means(x: Sequence[float], y: Sequence[float], bins: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Mean x and mean y per bin of x; bins hold (about) equal numbers of records."""
    order = np.argsort(np.asarray(x, dtype=float), kind="stable")
    groups = [g for g in np.array_split(order, max(1, min(bins, len(order)))) if len(g)]
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return np.array([xs[g].mean() for g in groups]), np.array([ys[g].mean() for g in groups])


def plot_rouge_by_length(
    path: Path, systems: Mapping[str, Sequence[dict[str, Any]]], rouge_type: str = "rougeLsum"
) -> None:
    """Per-record ROUGE against dialogue words, one colour per system, with binned means as lines."""
    figure, (axes,) = new_figure(size=(7, 4.5), dpi=120)
    for index, (name, predictions) in enumerate(systems.items()):
        colour = f"C{index}"
        x = [p["dialogue_words"] for p in predictions]
        y = [p["rouge"][rouge_type] for p in predictions]
        axes.scatter(x, y, s=8, alpha=0.3, color=colour)
        bx, by = binned_means(x, y, bins=min(10, max(1, len(x) // 20)))
        axes.plot(bx, by, marker="o", color=colour, label=f"{name} (binned mean)")
    axes.set_xlabel("dialogue length (words)")
    axes.set_ylabel(f"{rouge.ROUGE_LABELS.get(rouge_type, rouge_type)} F x100")
    axes.set_ylim(0, 100)
    axes.set_title(f"{rouge.ROUGE_LABELS.get(rouge_type, rouge_type)} per record against dialogue length")
    axes.legend(loc="upper right")
    save_figure(figure, path)


# ---------------------------------------------------------------------------- the whole run


def check_request(model: str | None, baseline: str | None, bootstrap: int, limit: int | None) -> None:
    """Raise ConfigError for requests that cannot work, before any data or model is loaded."""
    if not model and not baseline:
        raise ConfigError("nothing to evaluate: give a model, a baseline, or both")
    if baseline and baseline not in BASELINES:
        raise ConfigError(f"unknown baseline '{baseline}'; known: {', '.join(sorted(BASELINES))}")
    if bootstrap < 1:
        raise ConfigError(f"bootstrap resamples must be at least 1, got {bootstrap}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be at least 1, got {limit}")


def check_output_dir(folder: Path, overwrite: bool) -> None:
    """A folder holding anything (an earlier evaluation) is refused unless ``overwrite``: ConfigError."""
    if folder.is_file():
        raise ConfigError(f"{folder} is a file; --output-dir needs a folder")
    held = sorted(entry.name for entry in folder.iterdir()) if folder.is_dir() else []
    if held and not overwrite:
        shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
        raise ConfigError(
            f"{folder} is not empty ({shown}); pass --force to overwrite it, or choose another --output-dir"
        )


def evaluate(
    model: str | None,
    data: str | Path,
    split: str = EVAL_SPLIT,
    output_dir: str | Path = EVAL_OUTPUT_DIR,
    baseline: str | None = None,
    settings: RunSettings | None = None,
    *,
    limit: int | None = None,
    bootstrap: int = EVAL_BOOTSTRAP,
    seed: int = 0,
    backend: Backend | None = None,
    log: Say | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Evaluate ``model`` and/or ``baseline`` on ``split`` of ``data``; write OUT; return metrics.json's dict.

    ``settings`` carries backend, device, decoding and batching options (``make_settings``);
    its model name is replaced by ``model``. ``backend`` skips loading (tests, tools). A non-empty
    ``output_dir`` is refused unless ``overwrite``.
    """
    check_request(model, baseline, bootstrap, limit)
    check_output_dir(Path(output_dir), overwrite)
    say = log or (lambda _: None)
    records = rows_to_records(load_rows(data, split, limit, log), source=str(data))
    say(f"evaluating on {len(records)} records of {data} [{split}]")
    outputs: dict[str, list[dict[str, Any]]] = {}
    generation = None
    if model:
        run = settings or make_settings(model)
        run = replace(run, model=replace(run.model, name=model), batch=replace(run.batch, unordered=False))
        summarizer = Summarizer.from_settings(run, backend, log=say)
        generation = summarizer.backend.describe()
        outputs[MODEL_SYSTEM] = model_predictions(records, summarizer)
    if baseline:
        outputs[baseline] = baseline_predictions(records, baseline)
    systems = {name: summarize_predictions(rows, bootstrap, seed) for name, rows in outputs.items()}
    metrics = build_metrics(
        systems,
        model=model,
        baseline=baseline,
        data=str(data),
        split=split,
        generation=generation,
        bootstrap=bootstrap,
        seed=seed,
        limit=limit,
    )
    write_outputs(Path(output_dir), outputs, metrics)
    say(f"wrote {', '.join(output_files(outputs))} to {output_dir}")
    return metrics


def output_files(outputs: Mapping[str, Any]) -> list[str]:
    """Names of the files an evaluation writes; the first system gets predictions.jsonl."""
    names = [PREDICTIONS_FILE if i == 0 else f"predictions-{name}.jsonl" for i, name in enumerate(outputs)]
    return names + [METRICS_FILE, REPORT_FILE, PLOT_FILE]


def write_outputs(folder: Path, outputs: Mapping[str, list[dict[str, Any]]], metrics: Mapping[str, Any]) -> None:
    """Predictions per system, metrics.json, report.md and the ROUGE-by-length plot."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, file_name in zip(outputs, output_files(outputs)):
        write_predictions(folder / file_name, outputs[name])
    (folder / METRICS_FILE).write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    write_report(folder / REPORT_FILE, metrics)
    plot_rouge_by_length(folder / PLOT_FILE, outputs)


def format_line(metrics: Mapping[str, Any]) -> str:
    """One human line per system: ROUGE-1/2/L/Lsum means."""
    return "; ".join(
        f"{name}: {rouge.heading()} " + rouge.figures({t: system["rouge"][t]["mean"] for t in rouge.ROUGE_TYPES})
        for name, system in metrics["systems"].items()
    )


__all__ = [
    "baseline_predictions",
    "binned_means",
    "build_metrics",
    "evaluate",
    "format_line",
    "load_rows",
    "make_settings",
    "model_predictions",
    "plot_rouge_by_length",
    "rows_to_records",
    "summarize_predictions",
    "write_report",
]
