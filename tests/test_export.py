"""invoke export: hf and CTranslate2 serving folders from the tiny Pegasus, and the guards around them."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from invoke import MockContext
from invoke.exceptions import Exit
from safetensors import safe_open

from dialogsum_batch.errors import ConfigError, ModelError
from dialogsum_batch.export import EXPORT_INFO, ExportSettings, export_model, fill_converter_fields
from dialogsum_batch.tasks.export import bench_backends, export

EVALUATION_METRICS = {
    "records": 819,
    "rouge": {"rouge1": {"mean": 47.31, "low": 46.5, "high": 48.1},
              "rouge2": {"mean": 23.9, "low": 23.0, "high": 24.8}},
    "data": {"source": "corpus.7z", "split": "test"},
}
TRAINER_METRICS = {"eval_loss": 1.4821, "eval_rouge1": 46.9, "epoch": 3.0}


def linked_copy(source: Path, target: Path, skip: tuple[str, ...] = ()) -> Path:
    """A model folder whose files are symlinks to ``source``'s (cheap; the real files stay untouched)."""
    target.mkdir(parents=True)
    for item in source.iterdir():
        if item.name not in skip:
            (target / item.name).symlink_to(item.resolve())
    return target


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
    assert names == {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                     "tokenizer_config.json", "README.md", EXPORT_INFO}
    assert AutoModelForSeq2SeqLM.from_pretrained(out).num_parameters() > 0
    assert AutoTokenizer.from_pretrained(out)("Anna: hi")["input_ids"][-1] == 1
    assert GenerationConfig.from_pretrained(out).no_repeat_ngram_size == 3
    card = (out / "README.md").read_text()
    assert "| rouge1 | 47.31 [46.50, 48.10] |" in card and "corpus.7z, split test" in card
    assert "| eval_rouge1 | 46.9 |" in card
    assert "Random weights" in card  # the source card is kept
    assert "library_name: transformers" in card


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
    assert "library_name: ctranslate2" in (out / "README.md").read_text()


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

    monkeypatch.setattr("dialogsum_batch.export.make_converter", lambda source: Broken())
    with pytest.raises(ModelError, match="cannot convert .*No conversion is registered"):
        export_model(ExportSettings(str(tiny_model_dir), str(tmp_path / "out"), "ctranslate2"))
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- guards


@pytest.mark.parametrize("settings, message", [
    (dict(format="onnx"), "unknown export format"),
    (dict(format="hf", quantization="int8"), "--quantization applies to --format ctranslate2"),
    (dict(format="ctranslate2", dtype="bfloat16"), "--dtype applies to --format hf"),
    (dict(format="ctranslate2", quantization="int4"), "unknown quantization"),
    (dict(format="hf", dtype="float16"), "unknown dtype"),
])
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


def test_bench_task_runs_the_script():
    context = MockContext(run={re.compile(r".*bench/bench_backends\.py.*"): True})
    bench_backends(context, records=16, beams="1")
    command = context.run.call_args[0][0]
    assert "--records 16" in command and "--beams 1" in command
