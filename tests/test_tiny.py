"""The tiny offline Pegasus: loads with the Auto classes, generates, and rebuilds byte for byte."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import pytest

from dialogsum_batch.errors import ConfigError, InputError
from dialogsum_batch.fixtures import project_texts
from dialogsum_batch.fixtures.tiny import SPECIAL_PIECES, build_tiny_model, main, synthetic_texts

BUILD_LIMIT_S = 30.0  # the brief: under 30 s on 2 CPU cores


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Built:
    path: Path
    wall_s: float  # elapsed time, which a busy shared machine inflates
    cpu_s: float  # CPU time of this process (all its threads)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Built:
    """The default tiny model (seed 0, project data + synthetic texts), timed once imports are warm."""
    import sentencepiece  # noqa: F401
    from transformers import PegasusForConditionalGeneration, PegasusTokenizer  # noqa: F401

    out = tmp_path_factory.mktemp("tiny") / "seed0"
    wall, cpu = time.perf_counter(), time.process_time()
    build_tiny_model(out, seed=0)
    return Built(out, time.perf_counter() - wall, time.process_time() - cpu)


@pytest.fixture(scope="module")
def tiny_dir(built: Built) -> Path:
    return built.path


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch thread: on a busy 2-core machine OpenMP spinning makes a 0.3 s generate take 10-30 s."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def loaded(tiny_dir: Path, one_thread: None):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    return AutoModelForSeq2SeqLM.from_pretrained(tiny_dir), AutoTokenizer.from_pretrained(tiny_dir)


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    """Text the other tests feed the model: synthetic chats plus the project's dialogues."""
    return list(islice(synthetic_texts(50), 100)) + list(islice(project_texts(), 200))


def test_build_time(built: Built, record_property) -> None:
    record_property("tiny_build_wall_s", round(built.wall_s, 2))
    record_property("tiny_build_cpu_s", round(built.cpu_s, 2))
    print(f"tiny model built in {built.wall_s:.2f} s wall, {built.cpu_s:.2f} s CPU")
    assert built.cpu_s < BUILD_LIMIT_S


def test_folder_is_a_standard_hf_checkpoint(tiny_dir: Path) -> None:
    names = {path.name for path in tiny_dir.iterdir()}
    expected = {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}
    assert expected | {"generation_config.json", "README.md"} <= names
    assert "random weights" in (tiny_dir / "README.md").read_text(encoding="utf-8").lower()


def test_loads_with_auto_classes(loaded) -> None:
    model, tokenizer = loaded
    assert type(model).__name__ == "PegasusForConditionalGeneration"
    assert type(tokenizer).__name__ == "PegasusTokenizer"
    assert model.config.vocab_size == len(tokenizer)
    assert 1000 < len(tokenizer) <= 2000


def test_config_fields(tiny_dir: Path) -> None:
    config = json.loads((tiny_dir / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == "pegasus"
    assert config["normalize_before"] is True
    assert config["normalize_embedding"] is False
    assert config["scale_embedding"] is True
    assert (config["pad_token_id"], config["eos_token_id"], config["decoder_start_token_id"]) == (0, 1, 0)
    assert config["max_position_embeddings"] == 1024
    assert (config["d_model"], config["encoder_layers"], config["decoder_layers"]) == (64, 2, 2)


def test_generation_config(tiny_dir: Path) -> None:
    generation = json.loads((tiny_dir / "generation_config.json").read_text(encoding="utf-8"))
    assert generation["num_beams"] == 1
    assert generation["max_new_tokens"] == 64
    assert (generation["decoder_start_token_id"], generation["eos_token_id"], generation["pad_token_id"]) == (0, 1, 0)
    assert generation["forced_eos_token_id"] == 1


def test_special_token_layout(loaded) -> None:
    _, tokenizer = loaded
    assert tokenizer.convert_ids_to_tokens(list(range(len(SPECIAL_PIECES)))) == list(SPECIAL_PIECES)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 4)
    assert tokenizer("hello").input_ids[-1] == tokenizer.eos_token_id


def test_generate_returns_text(loaded, corpus: list[str]) -> None:
    model, tokenizer = loaded
    batch = tokenizer(corpus[:3], return_tensors="pt", padding=True, truncation=True, max_length=256)
    output = model.generate(**batch)
    texts = tokenizer.batch_decode(output, skip_special_tokens=True)
    assert len(texts) == 3
    assert all(text.strip() for text in texts)
    assert output.shape[1] <= 64 + 1  # max_new_tokens plus the decoder start token


def test_tokenizer_round_trip(loaded, corpus: list[str]) -> None:
    _, tokenizer = loaded
    text = "Amanda: I baked cookies. Do you want some? 🙂\nJerry: Sure! What time? 😂"
    decoded = tokenizer.decode(tokenizer(text).input_ids, skip_special_tokens=True)
    assert decoded == text.replace("\n", " ")  # the Pegasus normaliser turns newlines into spaces
    for sample in corpus[:20]:
        again = tokenizer.decode(tokenizer(sample).input_ids, skip_special_tokens=True)
        assert again == " ".join(sample.split())


def test_few_unknowns_on_project_and_synthetic_text(loaded, corpus: list[str]) -> None:
    _, tokenizer = loaded
    ids = [i for text in corpus for i in tokenizer(text).input_ids]
    unknown = ids.count(tokenizer.unk_token_id)
    assert unknown / len(ids) < 0.001, f"{unknown} of {len(ids)} tokens are <unk>"


def test_same_seed_gives_identical_files(tiny_dir: Path, tmp_path: Path) -> None:
    again = build_tiny_model(tmp_path / "again", seed=0)
    for name in ("model.safetensors", "tokenizer.json", "config.json", "generation_config.json", "README.md"):
        assert digest(again / name) == digest(tiny_dir / name), name


def test_cli_other_seed_changes_weights_not_vocabulary(tiny_dir: Path, tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path / "seed1"), "--seed", "1"]) == 0
    out = Path(capsys.readouterr().out.strip())
    assert out == tmp_path / "seed1"
    assert digest(out / "model.safetensors") != digest(tiny_dir / "model.safetensors")
    assert digest(out / "tokenizer.json") == digest(tiny_dir / "tokenizer.json")


def test_explicit_texts_train_the_vocabulary(loaded, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    greek = "Ζήνων: γεια σου, τι κάνεις;\nΕλένη: καλά, ευχαριστώ!"
    out = build_tiny_model(tmp_path / "greek", texts=[greek] * 20, vocab_size=500, d_model=32, heads=2, ffn_dim=64)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) <= 500
    assert tokenizer.unk_token_id not in tokenizer(greek).input_ids
    default_tokenizer = loaded[1]
    assert default_tokenizer.unk_token_id in default_tokenizer(greek).input_ids


def test_bad_sizes_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not divisible"):
        build_tiny_model(tmp_path / "bad", texts=["a b"], d_model=30, heads=4)


def test_bad_project_line_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"id": "1", "dialogue": "A: hi", "summary": "hi"}\n{"id": "2"}\n')
    with pytest.raises(InputError, match=r"^train\.jsonl:2: field 'dialogue' is missing"):
        list(project_texts(tmp_path))
