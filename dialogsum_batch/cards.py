"""Model cards (README.md) for training runs and exports: the shared parts, and the metadata as the Hub reads it.

See https://huggingface.co/docs/hub/model-cards: ``base_model`` names a Hub model id, ``datasets``
Hub dataset ids, and ``model-index`` the evaluation results the Hub shows beside the card. The
YAML is written by ``yaml.safe_dump``, so any path or name stays valid; what cannot be stated as a
Hub id (a local folder, a private file) is left out of the metadata and named in the text instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

from .hub import is_hub_id, resolve_hub_id
from .rouge import ROUGE_LABELS

DATA_SUFFIXES = (".7z", ".csv", ".json", ".jsonl", ".parquet", ".gz", ".txt")  # files, never dataset ids
DATASET_NAMES = {"knkarthick/samsum": "SAMSum"}  # pretty names for the results table
SUMMARIZATION = {"type": "summarization", "name": "Summarization"}
SYNTHETIC = "synthetic chats"
CARD_FILE = "README.md"
TAGS = ("pegasus", "summarization", "dialogue", "dialogsum-batch")


def metadata(
    name: str,
    library: str,
    license: Any,
    base_model: str | None,
    datasets: Iterable[str | None],
    results: Iterable[dict[str, Any] | None],
) -> dict[str, Any]:
    """The front matter every card of ours carries: lineage (Hub ids only), training data and model-index."""
    return {
        "library_name": library,
        "pipeline_tag": "summarization",
        "license": license,
        "base_model": base_model,
        "tags": list(TAGS),
        "datasets": unique(datasets),
        "metrics": ["rouge"],
        "model-index": model_index(name, results),
    }


def card_text(front: Mapping[str, Any], body: str) -> str:
    """A README.md: the front matter, a blank line, then the Markdown body."""
    return front_matter(front) + "\n" + body


def write_card(folder: Path, front: Mapping[str, Any], body: str) -> Path:
    """``folder``/README.md with ``front`` matter and ``body``."""
    path = folder / CARD_FILE
    path.write_text(card_text(front, body), encoding="utf-8")
    return path


def model_link(hub_id: str | None, local: str) -> str:
    """A Markdown link to the model's Hub page, or ``local`` (how to name it) when it has none."""
    return f"[{hub_id}](https://huggingface.co/{hub_id})" if hub_id else local


def use_section(model: str, python: str | None = None) -> str:
    """The card's ``## Use`` heading and the command that summarizes with ``model``, then ``python`` code."""
    section = f"## Use\n\n```sh\ndialogsum-batch --model {model} chats.jsonl > summaries.jsonl\n```\n"
    return section + (f"\n```python\n{python}\n```\n" if python else "")


def front_matter(metadata: Mapping[str, Any]) -> str:
    """``---`` YAML ``---`` for a README.md; keys with no value (None, empty list) are left out."""
    kept = {key: value for key, value in metadata.items() if value not in (None, [], {}, "")}
    return "---\n" + yaml.safe_dump(kept, sort_keys=False, allow_unicode=True, width=1000) + "---\n"


def split_card(folder: Path) -> tuple[str, str]:
    """``folder``/README.md as (YAML front matter, Markdown body); ("", "") when there is no card."""
    try:
        text = (folder / CARD_FILE).read_text(encoding="utf-8")
    except OSError:
        return "", ""
    end = text.find("\n---", 3) if text.startswith("---") else -1
    return (text[3:end], text[end + 4 :]) if end >= 0 else ("", text)


def read_front_matter(folder: Path) -> dict[str, Any]:
    """The YAML front matter of ``folder``/README.md as a dict; {} when there is none or it is not YAML."""
    front, _ = split_card(folder)
    try:
        data = yaml.safe_load(front) if front else None
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def cached_repo_id(path: Path, kind: str) -> str | None:
    """The repo id of a Hugging Face cache folder (``.../models--org--name/snapshots/REV``), else None."""
    for part in reversed(path.absolute().parts):
        if part.startswith(f"{kind}--"):
            return "/".join(part.split("--")[1:]) or None
    return None


def hub_model_id(name: str | Path) -> str | None:
    """The Hub model id ``name`` stands for: the id itself, or the repo of a cached snapshot; None when local."""
    text = str(name).strip()
    path = Path(text).expanduser()
    if path.exists():
        return cached_repo_id(path, "models")
    return text if is_hub_id(text) else None


def hub_dataset_id(source: Any) -> str | None:
    """The Hub dataset id of a corpus source (a dead id as its mirror; SAMSum's corpus.7z as SAMSum's), or None."""
    if not isinstance(source, str) or not source.strip():
        return None
    text = source.strip()
    name = Path(urlparse(text).path if "://" in text else text).name.lower()
    if name == "corpus.7z":  # the SAMSum authors' archive (hub.SAMSUM_CORPUS_URL), or a copy of it
        return resolve_hub_id("samsum")
    path = Path(text).expanduser()
    if path.exists():
        return cached_repo_id(path, "datasets")
    if "://" in text or not is_hub_id(text) or path.suffix.lower() in DATA_SUFFIXES:
        return None
    return resolve_hub_id(text)


def dataset_entry(source: Any, split: str, synthetic: int = 0, limit: int | None = None) -> dict[str, str] | None:
    """model-index's ``dataset`` for ``split`` of ``source`` (plus ``synthetic`` generated chats); None if unknown."""
    parts = []
    if isinstance(source, str) and source.strip():
        found = hub_dataset_id(source)
        label = Path(urlparse(source).path).name or source
        parts.append((DATASET_NAMES.get(found, found) if found else label, found or label))
    if synthetic:
        parts.append((f"{synthetic} {SYNTHETIC}", "synthetic"))
    if not parts:
        return None
    name = " + ".join(name for name, _ in parts) + (f" (first {limit} records)" if limit else "")
    return {"name": name, "type": "+".join(kind for _, kind in parts), "split": split}


def rouge_result(scores: Mapping[str, Any], dataset: Mapping[str, str]) -> dict[str, Any] | None:
    """One model-index result: ROUGE F x100 on ``dataset``; None without any ROUGE score.

    ``scores`` maps rouge1 ... rougeLsum to a number, or to ``{"mean": ...}`` as ``invoke evaluate`` writes.
    """
    metrics = []
    for key, label in ROUGE_LABELS.items():
        value = scores.get(key)
        value = value.get("mean") if isinstance(value, Mapping) else value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            metrics.append({"type": key, "value": round(float(value), 2), "name": label})
    return {"task": dict(SUMMARIZATION), "dataset": dict(dataset), "metrics": metrics} if metrics else None


def model_index(name: str, results: Iterable[dict[str, Any] | None]) -> list[dict[str, Any]] | None:
    """The ``model-index`` list for a model called ``name``; None when there are no results."""
    kept = [result for result in results if result]
    return [{"name": name, "results": kept}] if kept else None


def validation_result(
    trainer_metrics: Mapping[str, Any] | None, source: Any, split: str, synthetic: int = 0
) -> dict[str, Any] | None:
    """A training run's validation ROUGE (the Trainer's ``eval_*`` metrics) on ``split`` of ``source`` (plus
    ``synthetic`` generated chats) as one model-index result; None without scores or a nameable dataset."""
    dataset = dataset_entry(source, split, synthetic)
    return rouge_result(trainer_scores(trainer_metrics), dataset) if trainer_metrics and dataset else None


def trainer_scores(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``eval_rouge1`` ... as the Trainer names them (eval_results.json), without the prefix."""
    return {key[len("eval_") :]: value for key, value in metrics.items() if key.startswith("eval_")}


def unique(items: Iterable[str | None]) -> list[str]:
    """The non-empty items, first occurrence kept."""
    return list(dict.fromkeys(item for item in items if item))


def transformers_usage(name: str) -> str:
    """Python that summarizes with the model in folder or Hub repo ``name`` on transformers 5, where
    ``pipeline("summarization")`` no longer exists: the tokenizer and ``generate`` directly."""
    return (
        "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n\n"
        f'tokenizer = AutoTokenizer.from_pretrained("{name}")\n'
        f'model = AutoModelForSeq2SeqLM.from_pretrained("{name}")\n'
        'chat = "Anna: are we still on for 7?\\nTom: yes, see you there"\n'
        'inputs = tokenizer(chat, truncation=True, return_tensors="pt")\n'
        "print(tokenizer.decode(model.generate(**inputs)[0], skip_special_tokens=True))"
    )
