"""The CTranslate2 backend against the transformers one, on the fine-tuned tiny Pegasus exported both ways.

Agreement is checked on the trained model (conftest's ``trained_model_dir``): its logits are confident,
so a summary that differs means the export differs. On random weights the logits are near ties and
any quantization flips tokens, so agreement there measured noise (ROUGE-1 57-80 between runs).
"""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner
from conftest import read_jsonl, write_jsonl
from transformers import GenerationConfig

from dialogsum_batch import rouge
from dialogsum_batch.backends import OutOfMemory, choose_backend, load_backend
from dialogsum_batch.backends.ctranslate2 import (
    CTranslate2Backend,
    decoding_options,
    import_ctranslate2,
    pick_compute_type,
    pick_device,
)
from dialogsum_batch.cli import main
from dialogsum_batch.config import BatchSettings, DecodeSettings, ModelSettings
from dialogsum_batch.errors import ModelError
from dialogsum_batch.export import ExportSettings, export_model
from dialogsum_batch.fixtures.synthetic import generate
from dialogsum_batch.inference.engine import Engine
from dialogsum_batch.inference.records import Record

pytest.importorskip("ctranslate2")

RECORDS = 200
HELD_OUT_SEED = 4242  # chats that neither the vocabulary nor the fine-tuning saw
GREEDY = DecodeSettings(num_beams=1, max_new_tokens=32)
THREADS = 1  # two threads on two shared cores oversubscribe badly (OpenMP spin-waits)


@pytest.fixture(scope="module")
def exports(trained_model_dir, tmp_path_factory):
    """The fine-tuned tiny model as CTranslate2 float32 and int8 folders."""
    root = tmp_path_factory.mktemp("ct2")
    return {
        q: export_model(ExportSettings(str(trained_model_dir), str(root / q), "ctranslate2", q))
        for q in ("float32", "int8")
    }


@pytest.fixture(scope="module")
def records():
    rows = generate(RECORDS, seed=HELD_OUT_SEED)
    return [Record(i, row["id"], row["dialogue"], (row["summary"],)) for i, row in enumerate(rows)]


def summarize(path, backend, records, decode=GREEDY):
    """Summaries in record order through the real engine (token-budget batches, longest first)."""
    model = ModelSettings(name=str(path), backend=backend, threads=THREADS)
    loaded = load_backend(model, decode)
    outcomes = list(Engine(loaded, BatchSettings()).run(records))
    assert loaded.name == backend and not [o.error for o in outcomes if o.error]
    return [o.summary for o in outcomes]


@pytest.fixture(scope="module")
def transformers_summaries(trained_model_dir, records):
    return summarize(trained_model_dir, "transformers", records)


def mean_rouge1(summaries, records):
    scores = [rouge.score(s, r.references)["rouge1"] for s, r in zip(summaries, records, strict=True)]
    return sum(scores) / len(scores)


# ---------------------------------------------------------------------------- against transformers


def test_greedy_float32_matches_transformers(exports, records, transformers_summaries):
    ct2 = summarize(exports["float32"], "ctranslate2", records)
    same = sum(a == b for a, b in zip(ct2, transformers_summaries, strict=True))
    assert same / RECORDS >= 0.99, f"only {same}/{RECORDS} greedy summaries match"


def test_two_threads_run_two_batches_side_by_side_with_the_same_summaries(exports, records):
    """On the CPU each thread takes a batch of its own (inter_threads), not a share of every matrix."""
    model = ModelSettings(name=str(exports["int8"]), backend="ctranslate2", threads=2)
    loaded = load_backend(model, GREEDY)
    assert loaded.concurrent_batches == 2 and loaded.describe()["concurrent_batches"] == 2
    assert loaded.translator.num_translators == 2
    engine = Engine(loaded, BatchSettings(batch_tokens=2048))
    side_by_side = [o.summary for o in engine.run(records)]
    assert engine.counts.batches > 2
    assert side_by_side == summarize(exports["int8"], "ctranslate2", records)  # one thread, one batch at a time


def test_int8_scores_within_one_rouge1_point_and_mostly_agrees(exports, records, transformers_summaries):
    assert mean_rouge1(transformers_summaries, records) >= 30.0  # the model has learnt: the check can see
    int8 = summarize(exports["int8"], "ctranslate2", records)
    gap = abs(mean_rouge1(int8, records) - mean_rouge1(transformers_summaries, records))
    assert gap <= 1.0, f"int8 ROUGE-1 is {gap:.2f} points away from transformers"
    agreement = [rouge.score(a, [b])["rouge1"] for a, b in zip(int8, transformers_summaries, strict=True)]
    assert sum(agreement) / len(agreement) >= 90.0


def test_the_agreement_checks_catch_a_broken_export(tiny_model_dir, tmp_path, records, transformers_summaries):
    """An export of other weights (here: the untrained base) must fail both checks above."""
    wrong = export_model(ExportSettings(str(tiny_model_dir), str(tmp_path / "wrong"), "ctranslate2", "float32"))
    summaries = summarize(wrong, "ctranslate2", records[:50])
    assert sum(a == b for a, b in zip(summaries, transformers_summaries[:50], strict=True)) <= 5
    assert mean_rouge1(transformers_summaries[:50], records[:50]) - mean_rouge1(summaries, records[:50]) > 10.0


def test_the_real_models_relu_is_converted_and_computed_as_transformers_computes_it(
    trained_model_dir, tmp_path, records, exports
):
    """The public Pegasus checkpoints use ReLU (``"activation_function": "relu"`` in pegasus-large's
    config.json, which the fine-tuned ones start from); the fixtures keep PegasusConfig's default, GELU.
    The same weights with the real activation: CTranslate2 float32 must follow the config (summaries
    unlike the GELU export's) and give transformers' summaries."""
    import shutil

    relu = Path(shutil.copytree(trained_model_dir, tmp_path / "relu", ignore=shutil.ignore_patterns("checkpoint-*")))
    config = json.loads((relu / "config.json").read_text())
    assert config["activation_function"] == "gelu"
    (relu / "config.json").write_text(json.dumps({**config, "activation_function": "relu"}))
    exported = export_model(ExportSettings(str(relu), str(tmp_path / "relu-ct2"), "ctranslate2", "float32"))
    few = records[:60]
    reference = summarize(relu, "transformers", few)
    served = summarize(exported, "ctranslate2", few)
    gelu = summarize(exports["float32"], "ctranslate2", few)
    assert sum(a != b for a, b in zip(reference, gelu, strict=True)) >= 10  # the activation matters here
    assert sum(a == b for a, b in zip(served, reference, strict=True)) >= len(few) - 1  # 60/60 here


def test_token_counts_and_overrides_match_transformers(exports, trained_model_dir, records):
    decode = DecodeSettings(max_new_tokens=12, num_beams=2)
    rows = [r.dialogue for r in records[:6]]
    ct2 = CTranslate2Backend.load(str(exports["float32"]), ModelSettings(threads=THREADS), decode)
    from dialogsum_batch.backends.transformers import TransformersBackend

    torch_backend = TransformersBackend.load(str(trained_model_dir), ModelSettings(threads=THREADS), decode)
    ids = [e.ids for e in ct2.encode(rows)]
    assert ids == [e.ids for e in torch_backend.encode(rows)]
    assert [(g.text, g.tokens) for g in ct2.generate(ids)] == [(g.text, g.tokens) for g in torch_backend.generate(ids)]
    assert ct2.describe()["translate_options"]["beam_size"] == 2
    assert ct2.describe()["generation"]["max_new_tokens"] == 12


# ---------------------------------------------------------------------------- the command


def test_command_detects_the_folder_and_writes_the_same_records(exports, tmp_path):
    path = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": f"r{i}", "dialogue": r["dialogue"], "summary": r["summary"]}
            for i, r in enumerate(generate(5, seed=3))
        ],
    )
    metrics = tmp_path / "metrics.json"
    assert choose_backend(ModelSettings(), str(exports["int8"])).backend == "ctranslate2"
    result = CliRunner().invoke(
        main,
        ["-m", str(exports["int8"]), str(path), "--metrics-out", str(metrics), "--threads", "1"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(result.stdout)
    assert [r["id"] for r in rows] == [f"r{i}" for i in range(5)]
    assert all(r["summary"] and "rouge" in r for r in rows)
    described = json.loads(metrics.read_text())["model"]
    assert described["backend"] == "ctranslate2" and described["dtype"] == "int8_float32"
    assert "(ctranslate2, int8_float32)" in result.stderr


def test_forcing_ctranslate2_on_a_transformers_folder_converts_it_into_the_cache(tiny_model_dir):
    """No export step: the folder is converted (float32 by default) into the user cache and served from there."""
    args = ["-m", str(tiny_model_dir), "--backend", "ctranslate2", "--threads", "1", "--max-new-tokens", "4", "-"]
    result = CliRunner().invoke(main, args, input="A: hi\n", catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert read_jsonl(result.stdout)[0]["summary"]
    assert "(ctranslate2, float32)" in result.stderr and "Traceback" not in result.stderr
    assert "into the cache in" in result.stderr or "from the CTranslate2 cache" in result.stderr
    assert str(Path.home() / ".cache" / "dialogsum_batch" / "ctranslate2") in result.stderr  # HOME is isolated


def test_missing_package_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_ct2(name, *args, **kwargs):
        if name == "ctranslate2":
            raise ImportError("No module named 'ctranslate2'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ct2)
    with pytest.raises(ModelError, match="pip install ctranslate2"):
        import_ctranslate2()


# ---------------------------------------------------------------------------- option mapping


def test_transformers_length_rules_map_onto_ctranslate2():
    hub_like = GenerationConfig(
        num_beams=8, length_penalty=0.8, max_length=128, min_length=10, forced_eos_token_id=1, no_repeat_ngram_size=3
    )
    options = decoding_options(hub_like)
    assert (options.beam_size, options.length_penalty, options.no_repeat_ngram_size) == (8, 0.8, 3)
    assert options.max_decoding_length == 126  # 128 - decoder start - forced </s>
    assert options.min_decoding_length == 9  # min_length counts the decoder start token
    assert options.kwargs()["max_input_length"] == 0


def test_ctranslate2_defaults_never_leak():
    options = decoding_options(GenerationConfig())
    assert options.beam_size == 1  # CTranslate2 would use 2
    assert options.max_decoding_length == 19  # transformers' max_length 20, not CTranslate2's 256
    assert options.min_decoding_length == 0  # CTranslate2 would force one token
    overridden = decoding_options(GenerationConfig(max_new_tokens=64, min_new_tokens=5))
    assert (overridden.max_decoding_length, overridden.min_decoding_length) == (64, 5)


def test_sampling_settings_carry_over():
    options = decoding_options(GenerationConfig(do_sample=True, top_k=20, top_p=0.9, temperature=0.7))
    assert (options.sampling_topk, options.sampling_topp, options.sampling_temperature) == (20, 0.9, 0.7)


class FakeCT2:
    def __init__(self, gpus=0, types=("bfloat16", "float16", "int8_bfloat16")):
        self.gpus, self.types = gpus, set(types)

    def get_cuda_device_count(self):
        return self.gpus

    def get_supported_compute_types(self, device, index=0):
        return self.types


def test_device_and_compute_type_choices():
    assert pick_device(FakeCT2(gpus=2), "auto") == ("cuda", 0)
    assert pick_device(FakeCT2(gpus=2), "cuda:1") == ("cuda", 1)
    assert pick_device(FakeCT2(), "auto") == ("cpu", 0)
    with pytest.raises(ModelError, match="no CUDA device"):
        pick_device(FakeCT2(), "cuda")
    gpu = FakeCT2(gpus=1)
    assert pick_compute_type(gpu, ModelSettings(), "cuda", 0, "float32") == "bfloat16"
    assert pick_compute_type(gpu, ModelSettings(), "cuda", 0, "int8") == "default"
    assert pick_compute_type(gpu, ModelSettings(), "cpu", 0, "float32") == "default"
    assert pick_compute_type(gpu, ModelSettings(dtype="bfloat16"), "cuda", 0, "int8") == "int8_bfloat16"
    with pytest.raises(ModelError, match="overflow"):
        pick_compute_type(gpu, ModelSettings(dtype="float16"), "cuda", 0, "float32")


def test_out_of_memory_becomes_the_engine_signal(exports):
    backend = CTranslate2Backend.load(str(exports["int8"]), ModelSettings(threads=1), DecodeSettings())

    def full(*args, **kwargs):
        raise RuntimeError("CUDA failed with error out of memory")

    backend.translator = SimpleNamespace(translate_batch=full, compute_type="int8_float32")
    with pytest.raises(OutOfMemory):
        backend.generate([[5, 6, 1]])


def test_long_dialogues_are_cut_keeping_the_final_eos(exports):
    backend = CTranslate2Backend.load(
        str(exports["int8"]), ModelSettings(threads=1, max_source_length=16), DecodeSettings()
    )
    long, short = backend.encode(["Anna: " + "hello there " * 50, "Ben: ok"])
    assert long.truncated and len(long.ids) == 16 and long.ids[-1] == backend.eos_id
    assert not short.truncated


def test_forcing_transformers_on_a_ctranslate2_folder_says_what_it_is(tmp_path):
    folder = tmp_path / "ct2"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"x")
    (folder / "config.json").write_text("{}")
    result = CliRunner().invoke(main, ["-m", str(folder), "--backend", "transformers"], input='{"dialogue": "A: hi"}\n')
    assert result.exit_code == 1 and "is a CTranslate2 folder" in result.stderr
