"""invoke export: hf and CTranslate2 serving folders from the tiny Pegasus, and the guards around them."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from invoke import MockContext
from invoke.exceptions import Exit
from safetensors import safe_open

from dialogsum_batch.backends.ct2_convert import fill_converter_fields
from dialogsum_batch.errors import ConfigError, ModelError
from dialogsum_batch.export import EXPORT_INFO, ExportSettings, card_metadata, export_model
from dialogsum_batch.hub import SAMSUM_CORPUS_URL
from dialogsum_batch.tasks.export import export

EVALUATION_METRICS = {
    "records": 819,
    "rouge": {
        "rouge1": {"mean": 47.31, "low": 46.5, "high": 48.1},
        "rouge2": {"mean": 23.9, "low": 23.0, "high": 24.8},
    },
    "data": {"source": "corpus.7z", "split": "test"},
}
TRAINER_METRICS = {"eval_loss": 1.4821, "eval_rouge1": 46.9, "epoch": 3.0}
REPO = Path(__file__).resolve().parent.parent
BAR_FRAGMENTS = ("\r", "%|", "it/s]", "Loading weights", "Writing model shards")
OLDER_RUN_CARD = """---
library_name: transformers
license: apache-2.0
base_model: google/pegasus-cnn_dailymail
datasets: [knkarthick/samsum]
---

# run

Fine-tuned from [google/pegasus-cnn_dailymail](https://huggingface.co/google/pegasus-cnn_dailymail), its
tokenizer from [/data/base](https://huggingface.co//data/base).
"""


def linked_copy(source: Path, target: Path, skip: tuple[str, ...] = ()) -> Path:
    """A model folder whose files are symlinks to ``source``'s (cheap; the real files stay untouched)."""
    target.mkdir(parents=True)
    for item in source.iterdir():
        if item.name not in skip:
            (target / item.name).symlink_to(item.resolve())
    return target


def front_matter(card: str) -> dict:
    """The YAML between the card's opening ``---`` lines, parsed as the Hub parses it."""
    assert card.startswith("---\n")
    return yaml.safe_load(card[4 : card.index("\n---\n", 4)])


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def run_folder(tiny_model_dir, tmp_path) -> Path:
    """The tiny model as a training run left it: weights plus evaluation results."""
    folder = linked_copy(tiny_model_dir, tmp_path / "run")
    (folder / "metrics.json").write_text(json.dumps(EVALUATION_METRICS))
    (folder / "eval_results.json").write_text(json.dumps(TRAINER_METRICS))
    return folder


# ---------------------------------------------------------------------------- hf


def test_hf_export_is_a_clean_loadable_folder_with_metrics_in_the_card(run_folder, tmp_path):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, GenerationConfig

    out = export_model(ExportSettings(str(run_folder), str(tmp_path / "serve"), "hf"))
    names = {p.name for p in out.iterdir()}
    assert names == {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
        EXPORT_INFO,
    }
    assert AutoModelForSeq2SeqLM.from_pretrained(out).num_parameters() > 0
    assert AutoTokenizer.from_pretrained(out)("Anna: hi")["input_ids"][-1] == 1
    assert GenerationConfig.from_pretrained(out).no_repeat_ngram_size == 3
    card = (out / "README.md").read_text()
    assert "| rouge1 | 47.31 [46.50, 48.10] |" in card and "corpus.7z, split test" in card
    assert "| eval_rouge1 | 46.9 |" in card
    assert "Random weights" in card  # the source card is kept
    meta = front_matter(card)
    assert (meta["library_name"], meta["pipeline_tag"]) == ("transformers", "summarization")
    assert "base_model" not in meta and "datasets" not in meta  # a local random model, trained on no Hub data
    result = meta["model-index"][0]["results"][0]
    assert result["task"] == {"type": "summarization", "name": "Summarization"}
    assert result["dataset"] == {"name": "SAMSum", "type": "knkarthick/samsum", "split": "test"}  # corpus.7z
    assert result["metrics"][0] == {"type": "rouge1", "value": 47.31, "name": "ROUGE-1"}
    assert [m["type"] for m in result["metrics"]] == ["rouge1", "rouge2"]
    assert f"from the local folder `{run_folder}`" in card and "huggingface.co" not in card


def test_card_keeps_the_lineage_and_scores_the_run_validation_without_an_evaluation(tiny_model_dir, tmp_path):
    source = linked_copy(tiny_model_dir, tmp_path / "run", skip=("README.md",))
    (source / "README.md").write_text(OLDER_RUN_CARD)
    (source / "eval_results.json").write_text(json.dumps({**TRAINER_METRICS, "eval_rougeL": 38.123}))
    (source / "train_config.json").write_text(json.dumps({"data": SAMSUM_CORPUS_URL, "eval_split": "validation"}))
    card = (export_model(ExportSettings(str(source), str(tmp_path / "serve"), "hf")) / "README.md").read_text()
    meta = front_matter(card)
    assert (meta["base_model"], meta["license"], meta["datasets"]) == (
        "google/pegasus-cnn_dailymail",
        "apache-2.0",
        ["knkarthick/samsum"],
    )
    result = meta["model-index"][0]["results"][0]
    assert result["dataset"] == {"name": "SAMSum", "type": "knkarthick/samsum", "split": "validation"}
    assert {m["type"]: m["value"] for m in result["metrics"]} == {"rouge1": 46.9, "rougeL": 38.12}
    assert "huggingface.co//" not in card and "tokenizer from `/data/base`" in card  # an old broken link, mended
    assert "[google/pegasus-cnn_dailymail](https://huggingface.co/google/pegasus-cnn_dailymail)" in card


def test_card_of_a_hub_snapshot_names_its_repo_and_skips_a_baseline_only_evaluation(tmp_path):
    snapshot = tmp_path / "hub" / "models--transformersbook--pegasus-samsum" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    baseline_only = {**EVALUATION_METRICS, "system": "lead3", "systems": {"lead3": EVALUATION_METRICS}}
    meta = card_metadata(
        snapshot, ExportSettings(str(snapshot), str(tmp_path / "ct2"), "ctranslate2"), {"metrics.json": baseline_only}
    )
    assert (meta["base_model"], meta["library_name"]) == ("transformersbook/pegasus-samsum", "ctranslate2")
    assert meta["model-index"] is None  # lead-3's figures are not the model's


def test_hf_export_casts_to_bfloat16(tiny_model_dir, tmp_path):
    out = export_model(ExportSettings(str(tiny_model_dir), str(tmp_path / "bf16"), "hf", dtype="bfloat16"))
    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        name = next(iter(weights.keys()))
        assert str(weights.get_tensor(name).dtype) == "torch.bfloat16"
    assert json.loads((out / EXPORT_INFO).read_text())["dtype"] == "bfloat16"


# ---------------------------------------------------------------------------- ctranslate2


def test_ctranslate2_export_supplies_missing_config_fields_without_touching_the_source(tiny_model_dir, tmp_path):
    pytest.importorskip("ctranslate2")
    source = linked_copy(tiny_model_dir, tmp_path / "bare", skip=("config.json",))
    config = json.loads((tiny_model_dir / "config.json").read_text())
    del config["normalize_before"], config["normalize_embedding"]  # as transformers 5 writes configs built in code
    (source / "config.json").write_text(json.dumps(config))
    before = digest(source)
    out = export_model(ExportSettings(str(source), str(tmp_path / "ct2"), "ctranslate2", "float32"))
    assert digest(source) == before
    names = {p.name for p in out.iterdir()}
    assert {"model.bin", "config.json", "tokenizer.json", "generation_config.json", "README.md", EXPORT_INFO} <= names
    assert json.loads((out / "config.json").read_text())["decoder_start_token"] == "<pad>"
    assert json.loads((out / "generation_config.json").read_text())["max_new_tokens"] == 64
    info = json.loads((out / EXPORT_INFO).read_text())
    assert (info["format"], info["quantization"], info["max_source_length"]) == ("ctranslate2", "float32", 1024)
    assert front_matter((out / "README.md").read_text())["library_name"] == "ctranslate2"


def test_int8_is_the_default_and_much_smaller(tiny_model_dir, tmp_path):
    pytest.importorskip("ctranslate2")
    small = export_model(ExportSettings(str(tiny_model_dir), str(tmp_path / "int8"), "ctranslate2"))
    full = export_model(ExportSettings(str(tiny_model_dir), str(tmp_path / "fp32"), "ctranslate2", "float32"))
    assert json.loads((small / EXPORT_INFO).read_text())["quantization"] == "int8"
    assert (small / "model.bin").stat().st_size < 0.6 * (full / "model.bin").stat().st_size


def test_fill_converter_fields_keeps_values_that_are_there():
    from transformers import PegasusConfig

    bare = PegasusConfig()
    assert fill_converter_fields(bare) == {"normalize_before": True, "normalize_embedding": False}
    stated = PegasusConfig(normalize_before=False)
    fill_converter_fields(stated)
    assert stated.normalize_before is False and stated.normalize_embedding is False


def test_a_failed_conversion_leaves_nothing_behind(tiny_model_dir, tmp_path, monkeypatch):
    class Broken:
        def convert(self, *args, **kwargs):
            raise ValueError("No conversion is registered for the model configuration X")

    monkeypatch.setattr("dialogsum_batch.backends.ct2_convert.make_converter", lambda source: Broken())
    with pytest.raises(ModelError, match="cannot convert .*No conversion is registered"):
        export_model(ExportSettings(str(tiny_model_dir), str(tmp_path / "out"), "ctranslate2"))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- guards


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(format="onnx"), "unknown export format"),
        (dict(format="hf", quantization="int8"), "--quantization applies to --format ctranslate2"),
        (dict(format="ctranslate2", dtype="bfloat16"), "--dtype applies to --format hf"),
        (dict(format="ctranslate2", quantization="int4"), "unknown quantization"),
        (dict(format="hf", dtype="float16"), "unknown dtype"),
    ],
)
def test_bad_combinations_are_config_errors(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=message):
        export_model(ExportSettings(str(tmp_path), str(tmp_path / "out"), **settings))


def test_output_guards(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match="would overwrite the source"):
        export_model(ExportSettings(str(tiny_model_dir), str(tiny_model_dir.parent), "hf"))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty; pass --force"):
        export_model(ExportSettings(str(tiny_model_dir), str(busy), "hf"))
    with pytest.raises(ConfigError, match="not a previous export"):
        export_model(ExportSettings(str(tiny_model_dir), str(busy), "hf", force=True))
    assert (busy / "notes.txt").read_text() == "keep me"


def test_force_replaces_a_previous_export(tiny_model_dir, tmp_path):
    out = tmp_path / "serve"
    export_model(ExportSettings(str(tiny_model_dir), str(out), "hf"))
    (out / "stale.txt").write_text("old")
    export_model(ExportSettings(str(tiny_model_dir), str(out), "hf", dtype="bfloat16", force=True))
    assert not (out / "stale.txt").exists()
    assert json.loads((out / EXPORT_INFO).read_text())["dtype"] == "bfloat16"


def test_source_problems_are_model_errors(tiny_model_dir, tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        export_model(ExportSettings(str(tmp_path / "nope"), str(tmp_path / "out"), "hf"))
    pickled = linked_copy(tiny_model_dir, tmp_path / "pickled", skip=("model.safetensors",))
    (pickled / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ModelError, match="only pickle weights"):
        export_model(ExportSettings(str(pickled), str(tmp_path / "out"), "hf"))


# ---------------------------------------------------------------------------- tasks


def test_export_task_writes_the_folder(tiny_model_dir, tmp_path):
    out = export(MockContext(), model=str(tiny_model_dir), format="hf", output_dir=str(tmp_path / "t"))
    assert (Path(out) / "model.safetensors").is_file()


def test_export_task_maps_errors_to_exit(tiny_model_dir, tmp_path):
    with pytest.raises(Exit) as raised:
        export(MockContext(), model=str(tiny_model_dir), format="hf", output_dir=str(tmp_path), quantization="int8")
    assert raised.value.code == 1 and "--quantization applies" in str(raised.value.message)
    with pytest.raises(Exit) as missing:
        export(MockContext(), model="", output_dir="")
    assert missing.value.code == 2


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["hf", "ctranslate2"])
def test_export_in_a_pipe_logs_lines_and_draws_no_bars(run_folder, tmp_path, fmt):
    if fmt == "ctranslate2":
        pytest.importorskip("ctranslate2")
    out = tmp_path / fmt
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "invoke",
            "export",
            "--model",
            str(run_folder),
            "--format",
            fmt,
            "--output-dir",
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert not [fragment for fragment in BAR_FRAGMENTS if fragment in result.stderr], result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and "exporting" in lines[0] and f"exported {run_folder} as {fmt}" in lines[1]
