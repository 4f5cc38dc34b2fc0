"""End to end on the tiny real Pegasus: batching changes nothing, order is kept, both formats work.

The batching checks run on ``--backend transformers``: its padding and key mask are what they test. The
default backend (CTranslate2 float32 on the CPU) is checked against it in test_ct2_default.py."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from click.testing import CliRunner
from conftest import read_jsonl, write_jsonl

from dialogsum_batch.backends.transformers import TransformersBackend
from dialogsum_batch.cli import main
from dialogsum_batch.fixtures.synthetic import generate


def summarize(model, args, stdin=None, backend="transformers"):
    result = CliRunner().invoke(
        main,
        ["-m", str(model), "--backend", backend, "--num-beams", "1", "--max-new-tokens", "16", *args],
        input=stdin,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def one_by_one(trained_model_dir, tmp_path_factory):
    """200 held-out chats and the fine-tuned model's greedy summaries of them, one record per batch."""
    records = list(generate(200, seed=11))
    source = write_jsonl(tmp_path_factory.mktemp("e2e") / "in.jsonl", records)
    return records, source, read_jsonl(summarize(trained_model_dir, [str(source), "--max-batch-size", "1"]).stdout)


def test_batched_greedy_equals_one_by_one_and_keeps_order(trained_model_dir, one_by_one):
    """On the fine-tuned model (confident logits) padding and batching must change no summary."""
    records, source, single = one_by_one
    batched = read_jsonl(summarize(trained_model_dir, [str(source), "--batch-tokens", "4096"]).stdout)
    assert [r["id"] for r in batched] == [r["id"] for r in records] == [r["id"] for r in single]
    same = sum(a["summary"] == b["summary"] for a, b in zip(batched, single))
    assert same >= 199, f"only {same}/200 batched summaries equal the one-by-one ones"
    assert all(set(r["rouge"]) == {"rouge1", "rouge2", "rougeL", "rougeLsum"} for r in batched)


def test_the_batching_check_catches_an_unmasked_pad(trained_model_dir, one_by_one, monkeypatch):
    """Padding the encoder sees (no key mask) must fail the check above: it has teeth."""
    records, source, single = one_by_one
    monkeypatch.setattr(TransformersBackend, "_pad", _pad_without_mask)
    batched = read_jsonl(summarize(trained_model_dir, [str(source), "--batch-tokens", "4096"]).stdout)
    same = sum(a["summary"] == b["summary"] for a, b in zip(batched, single))
    assert same < 190, f"{same}/200 summaries survived an unmasked pad"


_real_pad = TransformersBackend._pad


def _pad_without_mask(self, batch):
    ids, mask, _ = _real_pad(self, batch)
    return ids, torch.ones_like(mask), False


def test_text_input_from_stdin_and_metrics(tiny_model_dir, tmp_path):
    metrics = tmp_path / "metrics.json"
    text = "Anna: are we still on for 7?\nBen: yes, see you at the cinema\n\nCarl: lunch?\nDina: sure 🍕\n"
    result = summarize(tiny_model_dir, ["--metrics-out", str(metrics)], stdin=text, backend="auto")
    rows = read_jsonl(result.stdout)
    assert [r["id"] for r in rows] == ["<stdin>:1", "<stdin>:4"] and all(isinstance(r["summary"], str) for r in rows)
    report = json.loads(metrics.read_text())
    assert report["records"] == 2 and report["model"]["backend"] == "ctranslate2"  # the default on a CPU
    assert report["model"]["dtype"] == "float32" and "(ctranslate2, float32)" in result.stderr
    assert report["model"]["generation"]["num_beams"] == 1 and 0 < report["padding_efficiency"] <= 1


def test_long_dialogue_is_truncated_at_max_source_length(tiny_model_dir):
    row = {"id": "long", "dialogue": "\n".join(f"A: turn number {i} with words" for i in range(400))}
    out = read_jsonl(summarize(tiny_model_dir, ["--max-source-length", "128"], stdin=json.dumps(row)).stdout)
    assert out[0]["truncated"] is True


def test_float16_is_refused_with_a_reason_unless_forced(tiny_model_dir):
    result = CliRunner().invoke(main, ["-m", str(tiny_model_dir), "--dtype", "float16"], input="")
    assert result.exit_code == 2 and "--dtype float16 makes Pegasus overflow (blank or NaN output)" in result.stderr


def test_python_dash_m_runs_the_same_command(tiny_model_dir):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dialogsum_batch",
            "-m",
            str(tiny_model_dir),
            "-q",
            "--max-new-tokens",
            "8",
            "--threads",
            "1",
        ],
        input='{"id": "x", "dialogue": "A: hi\\nB: hey"}\n',
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == "x" and done.stderr == ""
