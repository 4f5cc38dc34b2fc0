"""Hostile model folders and export outputs: one precise line each, nothing deleted that the export did not make.

Every broken folder is a copy of the session's tiny Pegasus with one file broken, fed to the four
places that load a model: ``dialogsum-batch -m DIR``, fine-tuning's base model, ``invoke evaluate``
and ``invoke export``.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import write_jsonl
from invoke import MockContext
from invoke.exceptions import Exit

from dialogsum_batch import export as export_module
from dialogsum_batch.cli import main
from dialogsum_batch.errors import ConfigError, ModelError
from dialogsum_batch.export import EXPORT_INFO, ExportSettings, export_model
from dialogsum_batch.fixtures.synthetic import generate
from dialogsum_batch.modelfiles import (
    MAX_PARAMETERS_ENV,
    check_model_folder,
    parameter_estimate,
)
from dialogsum_batch.tasks.evaluation import evaluate
from dialogsum_batch.tasks.export import export
from dialogsum_batch.training.presets import SMOKE
from dialogsum_batch.training.trainer import load_model


class Hostile:
    """Unpickling this runs a shell command (writes a marker file) unless the loader refuses it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def edit_json(folder: Path, name: str, **changes) -> None:
    data = json.loads((folder / name).read_text())
    data.update(changes)
    (folder / name).write_text(json.dumps(data))


def truncate_weights(folder: Path) -> None:
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])


def random_weights(folder: Path) -> None:
    (folder / "model.safetensors").write_bytes(os.urandom(4096))


def lying_header(folder: Path) -> None:
    """A header whose one tensor claims far more data than the file has."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [100000, 100000], "data_offsets": [0, 40_000_000_000]}})
    (folder / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header.encode() + b"\0" * 64)


BREAKAGES = {
    "truncated safetensors": (truncate_weights, "model.safetensors"),
    "random safetensors": (random_weights, "model.safetensors: not a safetensors file"),
    "lying safetensors header": (lying_header, "does not fit the file"),
    "config is a list": (lambda f: (f / "config.json").write_text("[1, 2]"), "must hold a JSON object, not a list"),
    "config is a string": (lambda f: (f / "config.json").write_text('"pegasus"'), "not a string"),
    "config is not JSON": (lambda f: (f / "config.json").write_text("{model_type: pegasus"), "not valid JSON"),
    "width not divisible by heads": (lambda f: edit_json(f, "config.json", d_model=66), "not divisible by"),
    "negative vocab": (lambda f: edit_json(f, "config.json", vocab_size=-5), "vocab_size must be an integer >= 1"),
    "string layers": (lambda f: edit_json(f, "config.json", encoder_layers="2"), "encoder_layers must be"),
    "terabyte model": (
        lambda f: edit_json(
            f, "config.json", vocab_size=10**9, d_model=2**16, encoder_attention_heads=16, decoder_attention_heads=16
        ),
        "parameters, more than",
    ),
    "generation not JSON": (lambda f: (f / "generation_config.json").write_text("{num_beams: 4"), "not valid JSON"),
    "generation is a list": (lambda f: (f / "generation_config.json").write_text("[]"), "not a list"),
    "zero beams": (lambda f: edit_json(f, "generation_config.json", num_beams=0), "num_beams must be an integer >= 1"),
    "negative max_new_tokens": (
        lambda f: edit_json(f, "generation_config.json", max_new_tokens=-3),
        "max_new_tokens must be an integer >= 1",
    ),
}


@pytest.fixture(params=sorted(BREAKAGES))
def broken(request, tiny_model_dir, tmp_path) -> tuple[Path, str]:
    """A copy of the tiny model with one file broken, and the words its error must contain."""
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    breakage, words = BREAKAGES[request.param]
    breakage(folder)
    return folder, words


def assert_one_line(text: str, words: str) -> None:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in text, text


def summarize(model: Path, *extra: str):
    return CliRunner().invoke(
        main,
        ["-m", str(model), "--threads", "1", "--quiet", *extra, "-"],
        input='{"id": "a", "dialogue": "Anna: hi\\nTom: hello"}\n',
    )


# ---------------------------------------------------------------------------- model folders


def test_serving_a_broken_folder_is_one_line(broken):
    folder, words = broken
    result = summarize(folder)
    assert result.exit_code == 1 and result.stdout == ""
    assert_one_line(result.stderr, words)


def test_finetune_base_model_check_refuses_it(broken):
    folder, words = broken
    with pytest.raises(ModelError) as raised:
        load_model(str(folder), replace(SMOKE, base_model=str(folder)))
    assert_one_line(str(raised.value), words)


def test_evaluate_refuses_it(broken, tmp_path):
    folder, words = broken
    data = write_jsonl(tmp_path / "test.jsonl", list(generate(2, seed=1)))
    with pytest.raises(Exit) as raised:
        evaluate(MockContext(), data=str(data), model=str(folder), output_dir=str(tmp_path / "eval"), bootstrap=10)
    assert raised.value.code == 1
    assert_one_line(str(raised.value.message), words)


def test_export_refuses_it_and_writes_nothing(broken, tmp_path):
    folder, words = broken
    with pytest.raises(Exit) as raised:
        export(MockContext(), model=str(folder), format="hf", output_dir=str(tmp_path / "out"))
    assert raised.value.code == 1 and not (tmp_path / "out").exists()
    assert_one_line(str(raised.value.message), words)


def test_the_tiny_model_passes_and_huge_sizes_are_refused_before_allocating(tiny_model_dir, tmp_path, monkeypatch):
    check_model_folder(tiny_model_dir)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert parameter_estimate(config) < 5_000_000
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    edit_json(folder, "config.json", d_model=2**20, encoder_attention_heads=16, decoder_attention_heads=16)
    monkeypatch.setattr(torch.nn.Linear, "__init__", lambda *a, **k: pytest.fail("allocated a layer"))
    with pytest.raises(ModelError, match="parameters, more than"):
        check_model_folder(folder)
    monkeypatch.setenv(MAX_PARAMETERS_ENV, str(10**15))
    check_model_folder(folder)  # the limit can be raised for a model that really is that large


@pytest.mark.parametrize("where", ["serve", "export"])
def test_a_hostile_pickle_is_refused_by_weights_only_loading(tiny_model_dir, tmp_path, where):
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    torch.save({"model.shared.weight": Hostile(marker)}, folder / "pytorch_model.bin")
    if where == "serve":
        result = summarize(folder, "--allow-pickle")
        assert result.exit_code == 1
        message = result.stderr
    else:
        with pytest.raises(Exit) as raised:
            export(MockContext(), model=str(folder), format="hf", output_dir=str(tmp_path / "out"), allow_pickle=True)
        assert raised.value.code == 1
        message = str(raised.value.message)
    assert not marker.exists(), "the pickle ran its command"
    assert_one_line(message, "weights_only loading refused its pickle")


def test_finetune_refuses_a_hostile_pickle(tiny_model_dir, tmp_path):
    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "pwned"
    torch.save({"model.shared.weight": Hostile(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(ModelError) as raised:
        load_model(str(folder), replace(SMOKE, base_model=str(folder), allow_pickle=True))
    assert not marker.exists()
    assert_one_line(str(raised.value), "weights_only loading refused its pickle")


# ---------------------------------------------------------------------------- export --force


@pytest.fixture
def previous(tiny_model_dir, tmp_path) -> Path:
    """A previous export, ready to be replaced with --force."""
    return export_model(ExportSettings(str(tiny_model_dir), str(tmp_path / "serve"), "hf"))


def swap_during_export(monkeypatch, change) -> None:
    """Run ``change`` after check_output has passed and before the old folder is replaced."""
    real = export_module.write_card

    def write_card(staging, source, settings):
        real(staging, source, settings)
        change()

    monkeypatch.setattr(export_module, "write_card", write_card)


def test_force_keeps_a_folder_swapped_for_a_non_export_during_the_run(tiny_model_dir, previous, monkeypatch):
    def swap():
        shutil.rmtree(previous)
        previous.mkdir()
        (previous / "thesis.tex").write_text("years of work")

    swap_during_export(monkeypatch, swap)
    with pytest.raises(ConfigError, match="changed during the export"):
        export_model(ExportSettings(str(tiny_model_dir), str(previous), "hf", force=True))
    assert [p.name for p in previous.iterdir()] == ["thesis.tex"]
    assert sorted(p.name for p in previous.parent.iterdir()) == ["serve"]  # no staging or aside folder left


def test_force_keeps_a_folder_whose_marker_vanished_at_removal_time(tiny_model_dir, previous, monkeypatch):
    swap_during_export(monkeypatch, lambda: (previous / EXPORT_INFO).unlink())
    with pytest.raises(ConfigError, match=f"no {EXPORT_INFO}"):
        export_model(ExportSettings(str(tiny_model_dir), str(previous), "hf", force=True))
    assert (previous / "model.safetensors").is_file()


def test_force_replaces_a_previous_export_and_leaves_no_aside_folder(tiny_model_dir, previous):
    export_model(ExportSettings(str(tiny_model_dir), str(previous), "hf", dtype="bfloat16", force=True))
    assert json.loads((previous / EXPORT_INFO).read_text())["dtype"] == "bfloat16"
    assert sorted(p.name for p in previous.parent.iterdir()) == ["serve"]


def test_a_symlinked_output_is_refused_and_its_target_untouched(tiny_model_dir, previous, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(previous)
    for force in (False, True):
        with pytest.raises(ConfigError, match="symbolic link"):
            export_model(ExportSettings(str(tiny_model_dir), str(link), "hf", force=force))
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="symbolic link"):
        export_model(ExportSettings(str(tiny_model_dir), str(dangling), "hf"))
    assert link.is_symlink() and (previous / EXPORT_INFO).is_file() and not (tmp_path / "nowhere").exists()


def test_an_output_turned_into_a_symlink_during_the_run_is_left_alone(tiny_model_dir, previous, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"

    def swap():
        previous.rename(elsewhere)  # still holds the marker: only the link is new
        previous.symlink_to(elsewhere)

    swap_during_export(monkeypatch, swap)
    with pytest.raises(ConfigError, match="symbolic link"):
        export_model(ExportSettings(str(tiny_model_dir), str(previous), "hf", force=True))
    assert previous.is_symlink() and (elsewhere / "model.safetensors").is_file()


def test_staging_never_lies_inside_the_folder_it_replaces(tiny_model_dir, tmp_path, monkeypatch):
    outer = tmp_path / "outer"
    (outer / "inner").mkdir(parents=True)
    monkeypatch.chdir(outer / "inner")
    seen = []
    real = export_module.write_card
    monkeypatch.setattr(export_module, "write_card", lambda staging, *a: (seen.append(staging), real(staging, *a)))
    with pytest.raises(ConfigError, match="not empty"):  # ".." is outer, which holds inner: not ours to replace
        export_model(ExportSettings(str(tiny_model_dir), "..", "hf", force=False))
    out = export_model(ExportSettings(str(tiny_model_dir), "../../fresh/.", "hf"))
    assert out == tmp_path / "fresh" and (out / EXPORT_INFO).is_file()
    assert seen[0].parent == tmp_path and not seen[0].is_relative_to(out)
