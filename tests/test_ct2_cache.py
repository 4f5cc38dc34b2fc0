"""The CTranslate2 conversion cache: convert once, reuse, rebuild what is broken, one publisher at a time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import read_jsonl, write_jsonl
from invoke import Context

from dialogsum_batch.backends import ct2_cache, ct2_convert, load_backend
from dialogsum_batch.backends.ct2_cache import (
    MARKER,
    Conversion,
    DigestIndex,
    cache_key,
    cache_root,
    cached_conversion,
    is_complete,
    list_entries,
)
from dialogsum_batch.backends.ctranslate2 import pick_compute_type
from dialogsum_batch.cli import main
from dialogsum_batch.cli import main as cli_main
from dialogsum_batch.config import DecodeSettings, ModelSettings
from dialogsum_batch.errors import ConfigError, ModelError
from dialogsum_batch.fixtures.synthetic import generate
from dialogsum_batch.tasks.cache import cache as cache_task
from dialogsum_batch.tasks.evaluation import evaluate as evaluate_task

pytest.importorskip("ctranslate2")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A cache of this test's own under DIALOGSUM_CACHE; returns the folder entries go into."""
    monkeypatch.setenv("DIALOGSUM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "ctranslate2"


@pytest.fixture
def conversions(monkeypatch) -> list[str]:
    """Every call of the CTranslate2 conversion, by quantization (the real conversion still runs)."""
    calls: list[str] = []
    real = ct2_convert.write_ctranslate2

    def counting(source, staging, quantization):
        calls.append(quantization)
        real(source, staging, quantization)

    monkeypatch.setattr(ct2_convert, "write_ctranslate2", counting)
    return calls


def convert(model_dir: Path, quantization: str = "int8") -> tuple[Path, list[str]]:
    lines: list[str] = []
    entry = cached_conversion(Conversion(model_dir, quantization, str(model_dir)), lines.append)
    return entry, lines


def entries(root: Path) -> list[Path]:
    return sorted(path for path in root.iterdir() if path.is_dir() and not path.name.startswith("."))


# ---------------------------------------------------------------------------- convert once, reuse


def test_the_command_converts_once_then_serves_from_the_cache(tiny_model_dir, cache_dir, conversions, tmp_path):
    chats = write_jsonl(
        tmp_path / "in.jsonl", [{"id": f"r{i}", "dialogue": r["dialogue"]} for i, r in enumerate(generate(3, seed=5))]
    )
    args = [
        "-m",
        str(tiny_model_dir),
        "--backend",
        "ctranslate2",
        "--threads",
        "1",
        "--max-new-tokens",
        "6",
        str(chats),
    ]
    first = CliRunner().invoke(main, args, catch_exceptions=False)
    second = CliRunner().invoke(main, args, catch_exceptions=False)
    assert first.exit_code == 0 and second.exit_code == 0, first.stderr + second.stderr
    assert conversions == ["float32"]  # serving keeps transformers fp32's summaries; the second run converted nothing
    assert "converting" in first.stderr and "later runs reuse it" in first.stderr  # said before the wait, not after
    assert "into the cache in" in first.stderr and "from the CTranslate2 cache" not in first.stderr
    assert f"from the CTranslate2 cache: {cache_dir}" in second.stderr and "converted" not in second.stderr
    assert [r["summary"] for r in read_jsonl(first.stdout)] == [r["summary"] for r in read_jsonl(second.stdout)]
    assert "(ctranslate2, float32)" in second.stderr
    assert len(entries(cache_dir)) == 1


def test_each_quantization_is_its_own_entry_and_serves_as_its_type(tiny_model_dir, cache_dir, conversions):
    decode = DecodeSettings(max_new_tokens=4)
    loaded = {
        q: load_backend(
            ModelSettings(name=str(tiny_model_dir), backend="ctranslate2", threads=1, quantization=q), decode
        )
        for q in ("float32", "int8")
    }
    assert conversions == ["float32", "int8"] and len(entries(cache_dir)) == 2
    assert loaded["float32"].describe()["dtype"] == "float32"
    assert loaded["int8"].describe()["dtype"] == "int8_float32"
    ids = [e.ids for e in loaded["int8"].encode(["Anna: see you at 5?\nBen: yes"])]
    assert loaded["int8"].generate(ids)[0].tokens > 0


def test_a_new_finetune_in_the_same_folder_is_a_new_entry(tiny_model_dir, cache_dir, tmp_path, conversions):
    import shutil

    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "run"))
    first, _ = convert(model)
    config = json.loads((model / "generation_config.json").read_text())
    (model / "generation_config.json").write_text(json.dumps({**config, "num_beams": 3}))
    second, lines = convert(model)
    assert first != second and conversions == ["int8", "int8"]
    assert json.loads((second / "generation_config.json").read_text())["num_beams"] == 3
    assert "into the cache in" in lines[-1]


# ---------------------------------------------------------------------------- broken entries


def test_an_entry_without_its_marker_is_rebuilt(tiny_model_dir, cache_dir, conversions):
    entry, _ = convert(tiny_model_dir)
    (entry / MARKER).unlink()  # as if the converter died before marking it complete
    again, lines = convert(tiny_model_dir)
    assert again == entry and conversions == ["int8", "int8"]
    assert any("incomplete or damaged" in line for line in lines)
    assert (entry / MARKER).is_file() and not list(cache_dir.glob(".*.old-*"))


def test_an_entry_with_a_changed_file_is_rebuilt(tiny_model_dir, cache_dir, conversions):
    entry, _ = convert(tiny_model_dir)
    model_bin = entry / "model.bin"
    data = bytearray(model_bin.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the content check can see it
    model_bin.write_bytes(bytes(data))
    assert not is_complete(entry, entry.name, DigestIndex(cache_dir / "digests.json"))
    convert(tiny_model_dir)
    assert conversions == ["int8", "int8"]
    assert model_bin.read_bytes() != bytes(data)


def test_leftovers_of_a_dead_converter_are_removed_before_converting(tiny_model_dir, cache_dir, conversions):
    entry, _ = convert(tiny_model_dir)
    (entry / MARKER).unlink()
    stale = cache_dir / f".tmp-{entry.name}-dead"
    stale.mkdir()
    (stale / "model.bin").write_bytes(b"half")
    convert(tiny_model_dir)
    assert not stale.exists() and [e.name for e in entries(cache_dir)] == [entry.name]


@pytest.mark.slow
def test_two_processes_starting_at_once_publish_one_complete_entry(tiny_model_dir, cache_dir, tmp_path):
    go = tmp_path / "go"
    code = f"""
import sys, time
from pathlib import Path
from dialogsum_batch.backends import ct2_convert
from dialogsum_batch.backends.ct2_cache import Conversion, cached_conversion
real = ct2_convert.write_ctranslate2
def slow(*args):  # widen the window in which the other process could step in
    time.sleep(1.5)
    real(*args)
ct2_convert.write_ctranslate2 = slow
while not Path({str(go)!r}).exists():
    time.sleep(0.01)
cached_conversion(Conversion(Path({str(tiny_model_dir)!r}), "int8", "tiny"), print)
"""
    env = {**os.environ, "DIALOGSUM_CACHE": str(cache_dir.parent), "PYTHONPATH": str(REPO)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    time.sleep(0.5)
    go.touch()
    outputs = [child.communicate(timeout=240) for child in children]
    assert all(child.returncode == 0 for child in children), [err[-2000:] for _, err in outputs]
    logs = "".join(out for out, _ in outputs)
    assert logs.count("into the cache in") == 1, logs  # the lock let one of them convert
    assert logs.count("from the CTranslate2 cache") == 1, logs
    (entry,) = entries(cache_dir)
    assert is_complete(entry, entry.name, DigestIndex(cache_dir / "digests.json"))
    assert not list(cache_dir.glob(".tmp-*"))


# ---------------------------------------------------------------------------- where, and the key


def test_the_cache_lives_in_the_user_cache_dir_unless_moved(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "dialogsum_batch" / "ctranslate2"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "dialogsum_batch" / "ctranslate2"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the XDG spec says
    assert cache_root() == tmp_path / "home" / ".cache" / "dialogsum_batch" / "ctranslate2"
    monkeypatch.setenv("DIALOGSUM_CACHE", str(tmp_path / "moved"))
    assert cache_root() == tmp_path / "moved" / "ctranslate2"


def test_dialogsum_cache_moves_the_conversions(tiny_model_dir, cache_dir, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    entry, _ = convert(tiny_model_dir)
    assert entry.parent == cache_dir and (entry / "model.bin").is_file()
    assert not (tmp_path / "home" / ".cache").exists()


def test_unchanged_files_are_not_hashed_again(tiny_model_dir, tmp_path, monkeypatch):
    hashed: list[str] = []
    real = ct2_cache.sha256_file
    monkeypatch.setattr(ct2_cache, "sha256_file", lambda path: hashed.append(path.name) or real(path))
    index = tmp_path / "digests.json"
    digests = DigestIndex(index)
    key = cache_key(tiny_model_dir, "int8", "4.8.5", digests)
    digests.save()
    assert "model.safetensors" in hashed and "config.json" in hashed
    hashed.clear()
    assert cache_key(tiny_model_dir, "int8", "4.8.5", DigestIndex(index)) == key
    assert hashed == []  # size and mtime unchanged: the remembered digests were used


def test_the_key_follows_content_quantization_and_version(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "trainer_state.json").write_text("{}")
    digests = DigestIndex(tmp_path / "digests.json")
    key = cache_key(folder, "int8", "4.8.5", digests)
    assert cache_key(folder, "float32", "4.8.5", digests) != key
    assert cache_key(folder, "int8", "4.9.0", digests) != key
    (folder / "trainer_state.json").write_text('{"step": 2}')  # not read by the converter
    assert cache_key(folder, "int8", "4.8.5", digests) == key
    (folder / "model.safetensors").write_bytes(b"weightz")
    os.utime(folder / "model.safetensors", ns=(1, 1))  # a new mtime, as any rewrite gives
    assert cache_key(folder, "int8", "4.8.5", digests) != key


# ---------------------------------------------------------------------------- options


def test_quantization_is_refused_for_the_transformers_backend(tiny_model_dir):
    with pytest.raises(ConfigError, match="--backend ctranslate2"):
        load_backend(
            ModelSettings(name=str(tiny_model_dir), backend="transformers", quantization="int8"), DecodeSettings()
        )


def test_quantization_under_auto_converts_with_it(tiny_model_dir, cache_dir, conversions):
    backend = load_backend(ModelSettings(name=str(tiny_model_dir), quantization="int8", threads=1), DecodeSettings())
    assert backend.name == "ctranslate2" and backend.describe()["dtype"] == "int8_float32"
    assert conversions == ["int8"]


def test_float16_conversions_are_refused_before_converting(tiny_model_dir, cache_dir, conversions):
    with pytest.raises(ModelError, match="overflow"):
        load_backend(
            ModelSettings(name=str(tiny_model_dir), backend="ctranslate2", quantization="float16"), DecodeSettings()
        )
    assert conversions == []


def test_quantization_on_a_ctranslate2_folder_is_its_compute_type():
    class CPU:
        def get_supported_compute_types(self, device, index=0):
            return {"float32", "int8", "int8_float32"}

    assert pick_compute_type(CPU(), ModelSettings(quantization="float32"), "cpu", 0, "int8") == "float32"
    assert pick_compute_type(CPU(), ModelSettings(), "cpu", 0, "int8") == "default"
    with pytest.raises(ModelError, match="pass one"):
        pick_compute_type(CPU(), ModelSettings(quantization="int8", dtype="bfloat16"), "cpu", 0, "int8")


def test_a_folder_that_is_no_model_says_so(tmp_path, cache_dir):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(main, ["-m", str(tmp_path / "empty"), "--backend", "ctranslate2", "-"], input="A: hi\n")
    assert result.exit_code == 1 and "no config.json" in result.stderr and "Traceback" not in result.stderr


# ---------------------------------------------------------------------------- tasks


def test_the_cache_command_and_task_list_and_clear(tiny_model_dir, cache_dir, capsys):
    int8, _ = convert(tiny_model_dir)
    float32, _ = convert(tiny_model_dir, "float32")
    shown = CliRunner().invoke(cli_main, ["cache", "--list"]).stdout
    assert int8.name[:12] in shown and float32.name[:12] in shown
    assert str(tiny_model_dir) in shown and "float32" in shown and f"{cache_dir}: 2 entries" in shown
    cache_task(Context(), clear=True, older_than="30")  # both were used just now
    assert "removed 0 conversions" in capsys.readouterr().out
    cleared = CliRunner().invoke(cli_main, ["cache", "--clear"])
    assert cleared.exit_code == 0 and "removed 2 conversions" in cleared.stdout
    assert list_entries(cache_dir) == [] and not list(cache_dir.iterdir())
    assert CliRunner().invoke(cli_main, ["cache", "--older-than", "3"]).exit_code == 2


def test_evaluate_serves_a_transformers_folder_through_ctranslate2(tiny_model_dir, cache_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    metrics = evaluate_task(
        Context(),
        data=str(REPO / "data" / "test.jsonl"),
        model=str(tiny_model_dir),
        output_dir=str(out),
        backend="ctranslate2",
        quantization="float32",
        max_new_tokens="6",
        limit="4",
        bootstrap=10,
    )
    assert metrics["records"] == 4 and metrics["generation"]["backend"] == "ctranslate2"
    assert metrics["generation"]["dtype"] == "float32"
    assert len(entries(cache_dir)) == 1 and (out / "predictions.jsonl").is_file()
