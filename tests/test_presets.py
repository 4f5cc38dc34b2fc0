"""Presets and the training config: precedence, coercion, and one-line errors for bad settings."""

from __future__ import annotations

import dataclasses
import json

import pytest

from dialogsum_batch.errors import ConfigError
from dialogsum_batch.training.config import SCHEDULES, TrainConfig
from dialogsum_batch.training.options import overrides, parse_assignments
from dialogsum_batch.training.presets import PRESETS, get_preset, load_train_config


def test_both_presets_exist_and_pass_their_own_checks():
    assert set(PRESETS) == {"pegasus-samsum", "smoke"}
    for config in PRESETS.values():
        assert config.check() is config


def test_pegasus_samsum_is_the_documented_recipe():
    config = get_preset("pegasus-samsum")
    assert config.base_model == "google/pegasus-cnn_dailymail"
    assert (config.learning_rate, config.per_device_train_batch_size, config.num_train_epochs) == (3e-5, 8, 5.0)
    assert (config.max_source_length, config.warmup_steps, config.weight_decay) == (512, 500, 0.01)
    assert (config.num_beams, config.length_penalty, config.max_new_tokens, config.min_length) == (8, 0.8, 128, 0)
    assert config.metric_for_best_model == "rougeL"
    # CUDA defaults are decided at run time: None means "on when CUDA is there".
    assert config.bf16 is None and config.gradient_checkpointing is None and config.auto_find_batch_size is None
    assert TrainConfig() == config  # a bare config is the real recipe


def test_pegasus_samsum_reads_the_original_samsum_archive():
    from dialogsum_batch.hub import SAMSUM_CORPUS_URL

    assert get_preset("pegasus-samsum").data == SAMSUM_CORPUS_URL


def test_smoke_preset_is_cpu_sized():
    config = get_preset("smoke")
    assert config.base_model == "tiny" and config.project_data and config.synthetic_train > 0
    assert config.bf16 is False and config.gradient_checkpointing is False and config.torch_threads == 1
    assert config.max_steps > 0 and config.learning_rate >= 1e-3
    assert config.output_dir == "runs/smoke"


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ConfigError, match="unknown preset 'fast'; known presets: pegasus-samsum, smoke"):
        get_preset("fast")


def test_config_is_frozen_and_json_ready():
    config = get_preset("smoke")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.learning_rate = 1.0  # type: ignore[misc]
    assert json.loads(json.dumps(config.to_dict()))["learning_rate"] == config.learning_rate


def test_overrides_beat_the_file_which_beats_the_preset(tmp_path):
    file = tmp_path / "run.yaml"
    file.write_text("preset: smoke\nlearning_rate: 1e-3\nmax_steps: 50\nbf16: no\n", encoding="utf-8")
    config = load_train_config(config_file=file, overrides={"max_steps": "20"})
    assert config.base_model == "tiny"  # the file's preset
    assert config.learning_rate == 1e-3  # PyYAML reads 1e-3 as text: coerced to a float
    assert config.max_steps == 20 and config.bf16 is False


def test_explicit_preset_wins_over_the_files_preset(tmp_path):
    file = tmp_path / "run.json"
    file.write_text(json.dumps({"preset": "smoke", "seed": 7}), encoding="utf-8")
    config = load_train_config("pegasus-samsum", file)
    assert config.base_model == "google/pegasus-cnn_dailymail" and config.seed == 7


@pytest.mark.parametrize("key", ["learning_rat", "epochs"])
def test_unknown_key_names_the_key_and_the_known_ones(key):
    with pytest.raises(ConfigError) as caught:
        load_train_config("smoke", overrides={key: "1"})
    message = str(caught.value)
    assert f"unknown setting '{key}'" in message and "learning_rate" in message and "num_train_epochs" in message
    assert "\n" not in message


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    file = tmp_path / "run.yaml"
    file.write_text("lr: 0.1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"run\.yaml: unknown setting 'lr'"):
        load_train_config("smoke", file)


def test_fp16_is_refused_with_the_reason(tmp_path):
    with pytest.raises(ConfigError, match=r"fp16 makes Pegasus overflow \(blank or NaN output\); use bf16"):
        load_train_config("smoke", overrides={"fp16": "true"})
    file = tmp_path / "run.json"
    file.write_text('{"fp16": false}', encoding="utf-8")
    assert load_train_config("smoke", file).bf16 is False  # asking for no fp16 is fine


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("max_steps", "1e3", 1000),
        ("bf16", "none", None),
        ("gradient_checkpointing", "on", True),
        ("max_eval_samples", "null", None),
        ("eval_num_beams", "2", 2),
        ("warmup_steps", "0.1", 0.1),
        ("columns", '{"dialogue": "chat"}', {"dialogue": "chat"}),
        ("data", '{"train": "a.csv", "validation": "b.csv"}', {"train": "a.csv", "validation": "b.csv"}),
        ("data", "Samsung/samsum", "Samsung/samsum"),
        ("output_dir", "runs/x", "runs/x"),
    ],
)
def test_command_line_text_is_coerced_to_each_fields_type(key, text, value):
    assert getattr(load_train_config("smoke", overrides={key: text}), key) == value


@pytest.mark.parametrize(
    ("key", "text", "expected"),
    [
        ("max_steps", "2.5", "whole number"),
        ("bf16", "maybe", "true or false"),
        ("learning_rate", "fast", "rate"),
        ("columns", "dialogue=chat", "JSON object"),
        ("per_device_train_batch_size", "0", "at least 1"),
        ("optimizer", "sgd", "adamw, adafactor"),
        ("lr_scheduler_type", "cosine_annealing", "not one of"),
        ("label_smoothing", "1.5", "label_smoothing"),
        ("metric_for_best_model", "bleu", "rougeL"),
    ],
)
def test_bad_values_are_one_line_config_errors(key, text, expected):
    with pytest.raises(ConfigError, match=expected):
        load_train_config("smoke", overrides={key: text})


def test_checkpoints_must_fall_on_evaluations():
    with pytest.raises(ConfigError, match="save_steps 150 must be a multiple of eval_steps 100"):
        load_train_config("smoke", overrides={"save_steps": 150})


def test_a_run_needs_some_training_data():
    with pytest.raises(ConfigError, match="no training data"):
        load_train_config("smoke", overrides={"project_data": "false", "synthetic_train": "0"})


def test_schedules_are_ones_the_trainer_knows():
    from transformers import SchedulerType

    assert set(SCHEDULES) <= {s.value for s in SchedulerType}


@pytest.mark.parametrize(
    ("content", "name", "expected"),
    [
        ("{bad json", "run.json", r"run\.json:1: invalid JSON"),
        ("a: [1,\n", "run.yaml", "invalid YAML"),
        ("- 1\n- 2\n", "run.yml", "expected a mapping"),
        ("x = 1", "run.toml", "name it .json, .yaml or .yml"),
    ],
)
def test_bad_config_files_are_config_errors(tmp_path, content, name, expected):
    file = tmp_path / name
    file.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=expected):
        load_train_config("smoke", file)


def test_a_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file .*nope.yaml does not exist"):
        load_train_config("smoke", tmp_path / "nope.yaml")


def test_assignments_need_an_equals_sign():
    assert parse_assignments(["a=1", " b = x=y "]) == {"a": "1", "b": "x=y"}
    with pytest.raises(ConfigError, match="--set expects KEY=VALUE, got 'learning_rate'"):
        parse_assignments(["learning_rate"])


def test_set_pairs_win_over_named_options():
    values = overrides({"output_dir": "runs/a", "max_steps": "10", "resume": True, "set_": ["max_steps=20"]})
    assert values == {"output_dir": "runs/a", "max_steps": "20", "resume": True}
    assert overrides({}) == {}
    assert overrides({"preset": "smoke", "config": "run.yaml", "data": "", "resume": False, "set_": None}) == {}
