"""Both presets, value by value: a refactor of how they are written must not move a single setting.

The expected values are written out in full (not derived from TrainConfig) so that a changed default
shows up here as a failing line, and compared as JSON so that 500 and 500.0 count as different.
"""

from __future__ import annotations

import json

from dialogsum_batch.hub import SAMSUM_CORPUS_URL
from dialogsum_batch.training.config import TrainConfig
from dialogsum_batch.training.presets import get_preset

PEGASUS_SAMSUM = {
    "base_model": "google/pegasus-cnn_dailymail",
    "data": SAMSUM_CORPUS_URL,
    "columns": {},
    "project_data": False,
    "synthetic_train": 0,
    "synthetic_validation": 0,
    "train_split": "train",
    "eval_split": "validation",
    "max_train_samples": None,
    "max_eval_samples": None,
    "output_dir": "runs/pegasus-samsum",
    "resume": False,
    "trust_remote_code": False,
    "allow_pickle": False,
    "num_train_epochs": 5.0,
    "max_steps": -1,
    "learning_rate": 3e-05,
    "lr_scheduler_type": "linear",
    "warmup_steps": 500,
    "weight_decay": 0.01,
    "label_smoothing": 0.1,
    "max_grad_norm": 1.0,
    "optimizer": "adamw",
    "per_device_train_batch_size": 8,
    "per_device_eval_batch_size": 16,
    "gradient_accumulation_steps": 1,
    "max_source_length": 512,
    "max_target_length": 128,
    "bf16": None,
    "gradient_checkpointing": None,
    "auto_find_batch_size": None,
    "seed": 42,
    "torch_threads": 0,
    "logging_steps": 50,
    "eval_steps": 500,
    "save_steps": 500,
    "save_total_limit": 2,
    "metric_for_best_model": "rougeL",
    "eval_num_beams": 4,
    "num_beams": 8,
    "length_penalty": 0.8,
    "max_new_tokens": 128,
    "min_length": 0,
    "no_repeat_ngram_size": 0,
}

SMOKE_CHANGES = {
    "base_model": "tiny",
    "data": "",
    "project_data": True,
    "synthetic_train": 2000,
    "synthetic_validation": 32,
    "output_dir": "runs/smoke",
    "max_steps": 300,
    "learning_rate": 0.005,
    "warmup_steps": 0.05,
    "weight_decay": 0.0,
    "label_smoothing": 0.0,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 32,
    "max_source_length": 256,
    "max_target_length": 64,
    "bf16": False,
    "gradient_checkpointing": False,
    "auto_find_batch_size": False,
    "torch_threads": 1,
    "logging_steps": 25,
    "eval_steps": 100,
    "save_steps": 100,
    "eval_num_beams": None,
    "num_beams": 1,
    "length_penalty": 1.0,
    "max_new_tokens": 64,
    "no_repeat_ngram_size": 3,
}


def as_json(values: dict) -> str:
    return json.dumps(values, sort_keys=True)


def test_pegasus_samsum_holds_every_value_of_the_recipe():
    assert as_json(get_preset("pegasus-samsum").to_dict()) == as_json(PEGASUS_SAMSUM)


def test_a_bare_config_is_the_pegasus_samsum_recipe():
    assert as_json(TrainConfig().to_dict()) == as_json(PEGASUS_SAMSUM)


def test_smoke_is_the_recipe_with_its_own_changes():
    assert as_json(get_preset("smoke").to_dict()) == as_json({**PEGASUS_SAMSUM, **SMOKE_CHANGES})


def test_field_order_is_kept():
    """train_config.json lists the settings in field order; people diff those files between runs."""
    assert list(get_preset("smoke").to_dict()) == list(PEGASUS_SAMSUM)
