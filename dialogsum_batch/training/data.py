"""Training data for a run: the configured corpus, the project's chats and synthetic ones, tokenized.

Every source ends as ``id`` / ``dialogue`` / ``summary`` rows in a ``train`` and (when there is
one) a ``validation`` split; tokenizing keeps ``input_ids``, ``attention_mask`` and ``labels``
only, unpadded: ``DataCollatorForSeq2Seq`` pads each batch to its own longest row.
"""

from __future__ import annotations

import datasets

from ..corpora import load_corpus
from ..errors import DataError
from ..fixtures import project_data_dir
from ..fixtures.synthetic import generate
from ..logs import Say
from .config import TrainConfig

TEXT_COLUMNS = ["id", "dialogue", "summary"]
SYNTHETIC_TRAIN_SEED = 1  # the tiny model's vocabulary is trained on seed 0; held-out tests use others
SYNTHETIC_VALIDATION_SEED = 2


def build_corpus(config: TrainConfig, log: Say) -> datasets.DatasetDict:
    """``train`` and, when any source has one, ``validation``: all sources joined, then capped."""
    parts: dict[str, list[datasets.Dataset]] = {"train": [], "validation": []}
    if config.data:
        _add_corpus(parts, config, log)
    if config.project_data:
        parts["train"] += project_datasets(log)
    if config.synthetic_train:
        parts["train"].append(synthetic_dataset(config.synthetic_train, SYNTHETIC_TRAIN_SEED, "syn-train"))
    if config.synthetic_validation:
        parts["validation"].append(synthetic_dataset(config.synthetic_validation, SYNTHETIC_VALIDATION_SEED, "syn-val"))
    if not parts["train"]:
        raise DataError("no training records: the configured sources are all empty")
    caps = {"train": config.max_train_samples, "validation": config.max_eval_samples}
    joined = {name: _cap(datasets.concatenate_datasets(found), caps[name]) for name, found in parts.items() if found}
    return datasets.DatasetDict(joined)


def _add_corpus(parts: dict[str, list[datasets.Dataset]], config: TrainConfig, log: Say) -> None:
    """The configured corpus' train split (required) and eval split (optional)."""
    corpus = load_corpus(config.data, columns=config.columns or None, log=log)
    if config.train_split not in corpus:
        raise DataError(f"{_describe(config.data)}: no '{config.train_split}' split; it has {', '.join(corpus)}")
    parts["train"].append(corpus[config.train_split].select_columns(TEXT_COLUMNS))
    if config.eval_split in corpus:
        parts["validation"].append(corpus[config.eval_split].select_columns(TEXT_COLUMNS))
    else:
        log(f"{_describe(config.data)} has no '{config.eval_split}' split: it adds no validation records")


def project_datasets(log: Say) -> list[datasets.Dataset]:
    """Every record of every file of the project's dialogues (``data/*.jsonl``), whatever split its name announces."""
    folder = project_data_dir()
    found = []
    for path in sorted(folder.glob("*.jsonl")):
        corpus = load_corpus(str(path), log=log)
        found += [split.select_columns(TEXT_COLUMNS) for split in corpus.values()]
    log(f"project data: {sum(len(d) for d in found)} records from {folder}")
    return found


def synthetic_dataset(n: int, seed: int, prefix: str) -> datasets.Dataset:
    """``n`` synthetic chats (dialogsum_batch.fixtures.synthetic) as a Dataset of id / dialogue / summary."""
    rows = list(generate(n, seed=seed, id_prefix=prefix))
    columns = {name: [row[name] for row in rows] for name in TEXT_COLUMNS}
    features = datasets.Features({name: datasets.Value("string") for name in TEXT_COLUMNS})
    return datasets.Dataset.from_dict(columns, features=features)


def _cap(dataset: datasets.Dataset, limit: int | None) -> datasets.Dataset:
    """The first ``limit`` rows (all when limit is None), as run_summarization's sample caps do."""
    return dataset if limit is None or limit >= len(dataset) else dataset.select(range(limit))


def _describe(source: str | dict) -> str:
    return source if isinstance(source, str) else ", ".join(f"{k}={v}" for k, v in source.items())


def tokenize(dataset: datasets.Dataset, tokenizer, config: TrainConfig, name: str) -> datasets.Dataset:
    """Token ids of dialogues (input) and summaries (labels), truncated to the configured lengths."""

    def encode(batch: dict[str, list]) -> dict[str, list]:
        # Stripped as backends.common.encode_texts does: a trailing space or line break would add a "▁" token.
        dialogues = [text.strip() for text in batch["dialogue"]]
        summaries = [text.strip() for text in batch["summary"]]
        features = tokenizer(dialogues, max_length=config.max_source_length, truncation=True)
        targets = tokenizer(text_target=summaries, max_length=config.max_target_length, truncation=True)
        features["labels"] = targets["input_ids"]
        return features

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, desc=f"tokenizing {name}")


def describe_lengths(dataset: datasets.Dataset, config: TrainConfig) -> str:
    """One line: how many sources and targets were truncated at their limits."""
    sources = sum(len(ids) >= config.max_source_length for ids in dataset["input_ids"])
    targets = sum(len(ids) >= config.max_target_length for ids in dataset["labels"])
    n = max(len(dataset), 1)
    return (
        f"{100 * sources / n:.1f}% of dialogues truncated at {config.max_source_length} "
        f"tokens, {100 * targets / n:.1f}% of summaries at {config.max_target_length}"
    )
