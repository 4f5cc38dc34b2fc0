"""invoke finetune end to end on the tiny Pegasus: it learns, its folder serves, it resumes.

One smoke run (the preset as shipped, through the Invoke task: conftest's ``smoke_run``) is shared
by the session; the resume test trains a few steps of the session's tiny model. About two minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import write_jsonl
from invoke import Context
from invoke.exceptions import Exit
from transformers import GenerationConfig, TrainerCallback

from dialogsum_batch.cli import main as cli_main
from dialogsum_batch.errors import ConfigError, ModelError
from dialogsum_batch.fixtures.synthetic import generate
from dialogsum_batch.hub import SAMSUM_CORPUS_URL
from dialogsum_batch.plots import Panel, Series, plot_lines
from dialogsum_batch.tasks.training import finetune as finetune_task
from dialogsum_batch.training import report
from dialogsum_batch.training import trainer as finetune_module
from dialogsum_batch.training.data import build_corpus
from dialogsum_batch.training.presets import SMOKE
from dialogsum_batch.training.runtime import ALLOCATOR_SETTING, prepare_cuda_allocator
from dialogsum_batch.training.trainer import decoding, describe_log, finetune, resume_point, rouge_metrics

HELD_OUT_SEED = 12345  # neither the vocabulary (0), the training (1) nor the validation (2) chats
SMOKE_LIMIT_S = 180
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parent.parent
BAR_FRAGMENTS = ("\r", "%|", "it/s]", "examples/s]", "Loading weights", "Writing model shards")


@pytest.fixture(scope="module")
def held_out(tmp_path_factory) -> Path:
    """Synthetic chats no part of the smoke run has seen, with reference summaries."""
    return write_jsonl(tmp_path_factory.mktemp("held") / "held.jsonl", list(generate(48, seed=HELD_OUT_SEED)))


def front_matter(card: str) -> dict:
    """The YAML between the card's opening ``---`` lines, parsed as the Hub parses it."""
    assert card.startswith("---\n")
    return yaml.safe_load(card[4 : card.index("\n---\n", 4)])


def rouge_l(model_dir: Path, inputs: Path, tmp_path: Path) -> float:
    """ROUGE-L of a model folder on ``inputs``, through the ``dialogsum-batch`` command itself."""
    metrics = tmp_path / f"{model_dir.name}-metrics.json"
    result = CliRunner().invoke(
        cli_main,
        [
            str(inputs),
            "--model",
            str(model_dir),
            "--metrics-out",
            str(metrics),
            "--output",
            str(tmp_path / f"{model_dir.name}.jsonl"),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads(metrics.read_text())["rouge"]["rougeL"]


# ---------------------------------------------------------------------- the smoke run


def test_smoke_run_finishes_within_three_minutes(smoke_run):
    run_dir, seconds = smoke_run
    assert seconds < SMOKE_LIMIT_S, f"smoke run took {seconds:.0f} s"
    assert (run_dir / "model.safetensors").is_file()


def test_fine_tuned_model_beats_the_untrained_one_by_15_rouge_l(smoke_run, held_out, tmp_path):
    run_dir, _ = smoke_run
    untrained = rouge_l(run_dir / "base-model", held_out, tmp_path)
    trained = rouge_l(run_dir, held_out, tmp_path)
    assert trained - untrained >= 15, f"ROUGE-L {untrained:.1f} -> {trained:.1f}"


def test_run_folder_holds_model_metrics_plot_and_card(smoke_run):
    run_dir, _ = smoke_run
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "generation_config.json",
        "train_config.json",
        "train_results.json",
        "eval_results.json",
        "trainer_state.json",
        "metrics.jsonl",
        "README.md",
        "training_curves.png",
    ):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "pytorch_model.bin").exists()  # weights as safetensors only
    saved = json.loads((run_dir / "train_config.json").read_text())
    assert saved["base_model"] == "tiny" and saved["max_steps"] == SMOKE.max_steps
    assert json.loads((run_dir / "eval_results.json").read_text())["eval_rougeL"] > 10
    assert (run_dir / "training_curves.png").read_bytes().startswith(PNG_MAGIC)


def test_generation_config_carries_the_tuned_decoding_only(smoke_run):
    saved = json.loads((smoke_run[0] / "generation_config.json").read_text())
    assert saved["num_beams"] == 1 and saved["max_new_tokens"] == 64 and saved["no_repeat_ngram_size"] == 3
    assert "max_length" not in saved  # the Trainer's fill-ins (max_length 20) are not saved


def test_loss_falls_and_every_evaluation_is_recorded(smoke_run):
    lines = [json.loads(line) for line in (smoke_run[0] / "metrics.jsonl").read_text().splitlines()]
    losses = [entry["loss"] for entry in lines if "loss" in entry]
    evaluations = [entry for entry in lines if "eval_rougeL" in entry]
    assert losses[0] > 6 and losses[-1] < losses[0] / 2
    assert [entry["step"] for entry in evaluations][:3] == [100, 200, 300]


def test_model_card_states_data_recipe_and_scores(smoke_run):
    card = (smoke_run[0] / "README.md").read_text()
    assert "synthetic chats" in card and "data/*.jsonl" in card
    assert "lr 0.005" in card and "greedy search" in card
    assert "validation ROUGE-1/2/L/Lsum" in card and "training_curves.png" in card
    meta = front_matter(card)
    assert "base_model" not in meta and "datasets" not in meta  # the tiny model, synthetic and project chats
    result = meta["model-index"][0]["results"][0]
    assert result["dataset"] == {
        "name": f"{SMOKE.synthetic_validation} synthetic chats",
        "type": "synthetic",
        "split": "validation",
    }
    scores = json.loads((smoke_run[0] / "eval_results.json").read_text())
    assert {m["type"]: m["value"] for m in result["metrics"]} == {
        key: round(scores[f"eval_{key}"], 2) for key in ("rouge1", "rouge2", "rougeL", "rougeLsum")
    }


RUN = report.RunSummary(
    100,
    10,
    5,
    {"train_loss": 1.0, "train_runtime": 3.0},
    {"eval_rouge1": 40.126, "eval_loss": 2.0},
    "checkpoint-5",
    "cpu",
    1,
)


def test_card_names_a_hub_base_and_hub_data_by_id():
    config = replace(
        SMOKE,
        base_model="google/pegasus-cnn_dailymail",
        data=SAMSUM_CORPUS_URL,
        synthetic_validation=0,
        output_dir="runs/pegasus-samsum",
    )
    card = report.model_card(config, RUN)
    meta = front_matter(card)
    assert (meta["base_model"], meta["datasets"]) == ("google/pegasus-cnn_dailymail", ["knkarthick/samsum"])
    assert meta["model-index"] == [
        {
            "name": "pegasus-samsum",
            "results": [
                {
                    "task": {"type": "summarization", "name": "Summarization"},
                    "dataset": {"name": "SAMSum", "type": "knkarthick/samsum", "split": "validation"},
                    "metrics": [{"type": "rouge1", "value": 40.13, "name": "ROUGE-1"}],
                }
            ],
        }
    ]
    assert "[google/pegasus-cnn_dailymail](https://huggingface.co/google/pegasus-cnn_dailymail)" in card


def test_card_names_a_local_base_by_path_only(tmp_path):
    base = tmp_path / "my base: v2"  # a path YAML would misread if it were written by hand
    base.mkdir()
    (base / "README.md").write_text("---\nlicense: mit\n---\n# base\n")
    card = report.model_card(replace(SMOKE, base_model=str(base), data="Samsung/samsum"), RUN)
    meta = front_matter(card)
    assert "base_model" not in meta and meta["license"] == "mit"
    assert meta["datasets"] == ["knkarthick/samsum"]  # the dead id's mirror
    assert f"the local model folder `{base}`" in card and "huggingface.co" not in card


@pytest.mark.slow
def test_training_in_a_pipe_logs_one_line_per_step_and_draws_no_bars(tmp_path):
    settings = [
        "max_steps=2",
        "synthetic_train=64",
        "synthetic_validation=8",
        "project_data=false",
        "eval_steps=2",
        "save_steps=2",
        "logging_steps=1",
        "max_new_tokens=8",
    ]
    command = [
        sys.executable,
        "-m",
        "dialogsum_batch",
        "finetune",
        "--preset",
        "smoke",
        "--output-dir",
        str(tmp_path / "run"),
    ] + [part for item in settings for part in ("--set", item)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    assert not [fragment for fragment in BAR_FRAGMENTS if fragment in result.stderr], result.stderr
    for line in (
        "loading the base model from",
        "tokenizing train: 64 records",
        "tokenizing validation: 8 records",
        "step 2/2 saved checkpoint-2",
        "model, tokenizer, metrics and card written to",
    ):
        assert line in result.stderr, line
    assert result.stdout.strip() == str(tmp_path / "run")


def test_rerunning_into_a_finished_run_asks_for_resume(smoke_run):
    with pytest.raises(Exit) as caught:
        finetune_task(Context(), preset="smoke", output_dir=str(smoke_run[0]))
    assert caught.value.code == 1 and "pass --resume" in str(caught.value.message)


# --------------------------------------------------------------------------- resuming


class SimulatedCrash(Exception):
    """Stands in for a kill right after the first checkpoint reached the disk."""


class CrashAfterFirstSave(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        raise SimulatedCrash(f"stopped after checkpoint-{state.global_step}")


def short_config(tiny_model_dir: Path, output_dir: Path) -> object:
    """Six steps of the session's tiny model, a checkpoint and an evaluation every three."""
    return replace(
        SMOKE,
        base_model=str(tiny_model_dir),
        output_dir=str(output_dir),
        project_data=False,
        synthetic_train=48,
        synthetic_validation=8,
        max_steps=6,
        eval_steps=3,
        save_steps=3,
        logging_steps=1,
        per_device_train_batch_size=8,
        max_source_length=128,
        max_target_length=32,
        max_new_tokens=16,
    )


def test_an_interrupted_run_resumes_from_its_checkpoint(tiny_model_dir, tmp_path):
    config = short_config(tiny_model_dir, tmp_path / "run")
    with pytest.raises(SimulatedCrash):
        finetune(config, log=lambda line: None, callbacks=[CrashAfterFirstSave()])
    assert [p.name for p in (tmp_path / "run").glob("checkpoint-*")] == ["checkpoint-3"]
    assert not (tmp_path / "run" / "model.safetensors").exists()

    lines: list[str] = []
    finetune(replace(config, resume=True), log=lines.append)
    assert "resuming from checkpoint-3" in lines
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert steps == [1, 2, 3, 4, 5, 6]  # steps 1-3 come from the checkpoint, 4-6 were trained after it


def test_resuming_a_finished_run_changes_nothing(smoke_run):
    run_dir, _ = smoke_run
    weights = (run_dir / "model.safetensors").read_bytes()
    lines: list[str] = []
    assert finetune(replace(SMOKE, output_dir=str(run_dir), resume=True), log=lines.append) == run_dir
    assert lines[-1] == f"{run_dir} already finished at checkpoint-{SMOKE.max_steps}: nothing to resume"
    assert (run_dir / "model.safetensors").read_bytes() == weights


def test_resume_point_rules(tmp_path):
    lines: list[str] = []
    assert resume_point(tmp_path / "new", True, lines.append) is None
    assert lines == [f"no checkpoint in {tmp_path / 'new'}: starting from scratch"]
    (tmp_path / "run" / "checkpoint-5").mkdir(parents=True)
    assert resume_point(tmp_path / "run", True, lines.append).endswith("checkpoint-5")
    with pytest.raises(ConfigError, match=r"already holds a run \(checkpoint-5\); pass --resume"):
        resume_point(tmp_path / "run", False, lines.append)


# ------------------------------------------------------------------- errors and pieces


def test_hub_base_model_offline_fails_fast_with_a_clear_message(tmp_path):
    config = replace(SMOKE, base_model="google/pegasus-cnn_dailymail", output_dir=str(tmp_path / "run"))
    started = time.perf_counter()
    with pytest.raises(ModelError, match="not cached and the Hugging Face Hub is unreachable") as caught:
        finetune(config, log=lambda line: None)
    assert "--base-model DIR" in str(caught.value) and "DIALOGSUM_MODEL" not in str(caught.value)
    assert time.perf_counter() - started < 10


def test_task_reports_config_errors_as_one_line(tmp_path):
    with pytest.raises(Exit) as caught:
        finetune_task(Context(), preset="smoke", output_dir=str(tmp_path), set_=["fp16=true"])
    assert caught.value.code == 1 and "fp16 makes Pegasus overflow" in caught.value.message
    with pytest.raises(Exit, match="unknown setting 'lr'"):
        finetune_task(Context(), preset="smoke", set_=["lr=0.1"])


def test_task_sets_the_cuda_allocator_before_training(monkeypatch, tmp_path):
    seen = {}

    def fake_finetune(config, log=None):
        seen.update({name: os.environ.get(name) for name in ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")})
        seen["max_steps"] = config.max_steps
        return Path(config.output_dir)

    monkeypatch.delenv("PYTORCH_ALLOC_CONF", raising=False)
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "max_split_size_mb:128")  # the user's own setting
    monkeypatch.setattr(finetune_module, "finetune", fake_finetune)
    finetune_task(Context(), preset="smoke", output_dir=str(tmp_path), max_steps="7")
    assert seen == {
        "PYTORCH_CUDA_ALLOC_CONF": "max_split_size_mb:128",
        "PYTORCH_ALLOC_CONF": ALLOCATOR_SETTING,
        "max_steps": 7,
    }


def test_allocator_setting_keeps_user_values():
    env = {"PYTORCH_ALLOC_CONF": "backend:native"}
    assert prepare_cuda_allocator(env) == {
        "PYTORCH_CUDA_ALLOC_CONF": ALLOCATOR_SETTING,
        "PYTORCH_ALLOC_CONF": "backend:native",
    }


def test_task_module_does_not_import_torch():
    code = "import sys, dialogsum_batch.tasks.training; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert result.stdout.strip() == "False"


def test_finetune_command_reports_errors_on_one_line():
    from click.testing import CliRunner

    from dialogsum_batch.cli import main

    result = CliRunner().invoke(main, ["finetune", "--preset", "smoke", "--set", "optimizer=sgd"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.endswith(" error: optimizer 'sgd' is not one of adamw, adafactor\n")
    assert len(result.stderr.splitlines()) == 1


def test_decoding_fits_chat_summaries_onto_a_news_checkpoint():
    news = GenerationConfig(num_beams=8, length_penalty=0.8, max_length=128, min_length=32, early_stopping=True)
    tuned = decoding(replace(SMOKE, num_beams=4, length_penalty=0.6, max_new_tokens=60, min_length=0), news)
    assert (tuned.num_beams, tuned.length_penalty, tuned.max_new_tokens, tuned.min_length) == (4, 0.6, 60, 0)
    assert tuned.max_length is None and news.min_length == 32  # the base config is left alone
    greedy = decoding(replace(SMOKE, num_beams=1, length_penalty=0.6), news)
    assert greedy.num_beams == 1 and greedy.length_penalty is None  # beam-only flags would fail validation


def test_rouge_metrics_decode_padding_and_score(tiny_model_dir):
    import numpy as np
    from transformers import AutoTokenizer, EvalPrediction

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    ids = tokenizer(["Anna will meet Tom at 5 pm.", "Tom buys milk."], padding=True)["input_ids"]
    labels = np.array(ids)
    labels[labels == tokenizer.pad_token_id] = -100
    generated = np.concatenate([np.zeros((2, 1), dtype=int), np.array(ids)], axis=1)  # decoder start token first
    metrics = rouge_metrics(tokenizer)(EvalPrediction(predictions=generated, label_ids=labels))
    assert metrics["rougeL"] == pytest.approx(100.0) and metrics["rouge1"] == pytest.approx(100.0)
    assert metrics["gen_len"] > 3


def test_log_lines_read_well():
    assert (
        describe_log(25, 300, {"loss": 2.5, "learning_rate": 1e-3, "grad_norm": 0.5, "epoch": 0.2})
        == "step 25/300 epoch 0.20 loss 2.5000 lr 1.00e-03 grad_norm 0.500"
    )
    line = describe_log(
        100,
        300,
        {
            "eval_loss": 3.0,
            "eval_rouge1": 30.0,
            "eval_rouge2": 8.0,
            "eval_rougeL": 25.0,
            "eval_gen_len": 20.0,
            "eval_runtime": 1.5,
        },
    )
    assert line == "step 100/300 validation: loss 3.0000 ROUGE-1/2/L 30.00/8.00/25.00 gen_len 20.0 (1.5 s)"


def test_corpus_joins_a_file_the_project_chats_and_synthetic_ones(tmp_path, monkeypatch):
    rows = [{"id": f"r{i}", "dialogue": f"A: hi {i}\nB: yo", "summary": f"A greets B {i}."} for i in range(5)]
    train = write_jsonl(tmp_path / "train.jsonl", rows)
    project = tmp_path / "project"
    project.mkdir()
    write_jsonl(project / "examples.jsonl", rows[:2])
    monkeypatch.setattr("dialogsum_batch.training.data.project_data_dir", lambda: project)
    config = replace(SMOKE, data=str(train), synthetic_train=3, synthetic_validation=2, max_train_samples=9)
    lines: list[str] = []
    corpus = build_corpus(config, lines.append)
    assert len(corpus["train"]) == 9 and len(corpus["validation"]) == 2  # 5 + 2 + 3 capped at 9
    assert corpus["train"].column_names == ["id", "dialogue", "summary"]
    assert any("has no 'validation' split" in line for line in lines)


def test_plots_write_pngs(tmp_path):
    lines = plot_lines(
        tmp_path / "a.png", [Panel("Loss", "loss", [Series("train", [(1, 3.0), (2, 2.0)]), Series("empty", [])])]
    )
    assert lines.read_bytes().startswith(PNG_MAGIC) and lines.stat().st_size > 2000
    with pytest.raises(ValueError):
        plot_lines(tmp_path / "c.png", [])


def test_only_known_trainer_noise_is_filtered():
    import logging

    from dialogsum_batch.training.trainer import MISSING_KEYS, _KnownNoise

    noise = _KnownNoise({"lm_head.weight", "model.encoder.embed_tokens.weight"})

    def kept(message: str) -> bool:
        return noise.filter(logging.LogRecord("transformers.trainer", logging.WARNING, "", 0, message, None, None))

    assert not kept(MISSING_KEYS + "['lm_head.weight', 'model.encoder.embed_tokens.weight'].")
    assert kept(MISSING_KEYS + "['lm_head.weight', 'model.encoder.layers.0.fc1.weight'].")
    assert not kept("Both `max_new_tokens` (=64) and `max_length`(=20) seem to have been set.")
    assert kept("something else")
