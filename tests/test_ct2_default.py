"""Fast by default: ``--backend auto`` serves through CTranslate2 float32 on the CPU, with transformers' summaries.

Which backend auto picks, and the one line it writes when it falls back; that the default's greedy summaries
equal ``--backend transformers``; that a process serving a cached conversion never imports torch or
transformers; that two first runs at once leave one good cache entry.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import launch_env, read_jsonl, write_jsonl
from transformers import AutoTokenizer, GenerationConfig

from dialogsum_batch.backends import choose_backend, load_backend
from dialogsum_batch.backends.common import encode_texts
from dialogsum_batch.backends.ct2_cache import Conversion, DigestIndex, cached_conversion, is_complete
from dialogsum_batch.backends.ctranslate2 import GenerationValues, decoding_options, load_generation
from dialogsum_batch.backends.tokenizer import load_light_tokenizer
from dialogsum_batch.cli import main
from dialogsum_batch.config import DecodeSettings, ModelSettings
from dialogsum_batch.fixtures.legacy import build_legacy_checkpoint
from dialogsum_batch.fixtures.synthetic import generate

pytest.importorskip("ctranslate2")

GREEDY = ["--num-beams", "1", "--max-new-tokens", "16", "--threads", "1"]


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty conversion cache of this test's own (children inherit it); the folder entries go into."""
    monkeypatch.setenv("DIALOGSUM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "ctranslate2"


@pytest.fixture(scope="module")
def chats(tmp_path_factory) -> Path:
    rows = [{"id": row["id"], "dialogue": row["dialogue"]} for row in generate(40, seed=23)]
    return write_jsonl(tmp_path_factory.mktemp("chats") / "chats.jsonl", rows)


def command(*args: str, hook: str = "") -> subprocess.CompletedProcess:
    """``python -m dialogsum_batch ARGS`` in a process of its own, ``hook`` run first (to hide a package)."""
    code = f"import sys\n{hook}\nfrom dialogsum_batch.cli import main\nmain(sys.argv[1:], prog_name='dialogsum-batch')"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=launch_env(), timeout=300
    )


def summaries(stdout: str) -> list[str]:
    return [row["summary"] for row in read_jsonl(stdout)]


# ---------------------------------------------------------------------------- which backend


def test_auto_picks_ctranslate2_float32_for_a_pegasus_folder_on_the_cpu(tiny_model_dir, cache, tmp_path):
    choice = choose_backend(ModelSettings(name=str(tiny_model_dir)), str(tiny_model_dir))
    assert (choice.backend, choice.note) == ("ctranslate2", None)  # the tiny model decodes greedily
    metrics = tmp_path / "metrics.json"
    result = CliRunner().invoke(
        main, ["-m", str(tiny_model_dir), "--metrics-out", str(metrics), *GREEDY, "-"], input="A: hi\nB: hey\n"
    )
    assert result.exit_code == 0, result.stderr
    described = json.loads(metrics.read_text())["model"]
    assert (described["backend"], described["dtype"]) == ("ctranslate2", "float32")
    assert "(ctranslate2, float32)" in result.stderr and "converting" in result.stderr
    assert "serving with transformers" not in result.stderr


def test_without_the_package_auto_falls_back_to_transformers_in_one_line(tiny_model_dir, cache, tmp_path):
    metrics = tmp_path / "metrics.json"
    done = command(
        "-m", str(tiny_model_dir), "--metrics-out", str(metrics), *GREEDY, "-", hook="sys.modules['ctranslate2'] = None"
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("serving with transformers: the ctranslate2 package is not installed") == 1
    described = json.loads(metrics.read_text())["model"]
    assert (described["backend"], described["dtype"]) == ("transformers", "float32")
    assert "(transformers, float32)" in done.stderr and not cache.exists()


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        (dict(dtype="bfloat16"), "--dtype bfloat16"),
        (dict(trust_remote_code=True), "--trust-remote-code"),
        (dict(device="cuda"), "on a GPU"),
        (dict(device="cuda:1"), "on a GPU"),
    ],
)
def test_settings_only_transformers_has_fall_back(tiny_model_dir, settings, reason):
    choice = choose_backend(ModelSettings(name=str(tiny_model_dir), **settings), str(tiny_model_dir))
    assert choice.backend == "transformers" and reason in choice.reason and choice.note.startswith("serving with")


def test_models_and_decoding_not_checked_with_ctranslate2_fall_back(tiny_model_dir, tmp_path):
    other = tmp_path / "bart"
    other.mkdir()
    config = json.loads((tiny_model_dir / "config.json").read_text())
    (other / "config.json").write_text(json.dumps({**config, "model_type": "bart"}))
    assert "not bart" in choose_backend(ModelSettings(), str(other)).reason
    grouped = tmp_path / "grouped"
    grouped.mkdir()
    (grouped / "config.json").write_text(json.dumps(config))
    (grouped / "generation_config.json").write_text(json.dumps({"num_beams": 4, "num_beam_groups": 2}))
    assert "num_beam_groups=2" in choose_backend(ModelSettings(), str(grouped)).reason


def test_asked_for_backends_and_quantizations_are_taken_as_asked(tiny_model_dir):
    path = str(tiny_model_dir)
    assert choose_backend(ModelSettings(backend="transformers"), path).backend == "transformers"
    assert choose_backend(ModelSettings(backend="ctranslate2", dtype="bfloat16"), path).backend == "ctranslate2"
    fast = choose_backend(ModelSettings(quantization="int8", device="cuda"), path)  # int8 is CTranslate2's
    assert fast.backend == "ctranslate2" and fast.note is None


def test_beam_search_through_ctranslate2_says_it_may_differ(tiny_model_dir):
    beams = choose_backend(ModelSettings(), str(tiny_model_dir), DecodeSettings(num_beams=4))
    assert beams.backend == "ctranslate2" and "4 beams" in beams.note and "--backend transformers" in beams.note
    assert choose_backend(ModelSettings(), str(tiny_model_dir), DecodeSettings(num_beams=1)).note is None


def test_fast_is_int8_through_ctranslate2(tiny_model_dir, cache, tmp_path):
    metrics = tmp_path / "metrics.json"
    args = ["-m", str(tiny_model_dir), "--fast", "--metrics-out", str(metrics), *GREEDY, "-"]
    result = CliRunner().invoke(main, args, input="A: hi\nB: hey\n")
    assert result.exit_code == 0, result.stderr
    assert json.loads(metrics.read_text())["model"]["dtype"] == "int8_float32"
    refused = CliRunner().invoke(main, ["-m", str(tiny_model_dir), "--fast", "--backend", "transformers", "-"])
    assert refused.exit_code == 2 and "--fast" in refused.stderr
    clash = CliRunner().invoke(main, ["-m", str(tiny_model_dir), "--fast", "--quantization", "float32", "-"])
    assert clash.exit_code == 2 and "pass one" in clash.stderr


# ---------------------------------------------------------------------------- the same summaries


def test_the_default_summaries_equal_transformers_greedy(tiny_model_dir, cache, chats):
    default = CliRunner().invoke(main, ["-m", str(tiny_model_dir), *GREEDY, str(chats)], catch_exceptions=False)
    torch = CliRunner().invoke(
        main, ["-m", str(tiny_model_dir), "--backend", "transformers", *GREEDY, str(chats)], catch_exceptions=False
    )
    assert default.exit_code == torch.exit_code == 0, default.stderr + torch.stderr
    assert "(ctranslate2, float32)" in default.stderr and "(transformers, float32)" in torch.stderr
    assert summaries(default.stdout) == summaries(torch.stdout)


@pytest.mark.slow
def test_a_cached_conversion_serves_without_torch_or_transformers(tiny_model_dir, cache, chats):
    """Importing them costs ~2.7 s a process; with the conversion cached, neither may be imported at all."""
    warm = command("-m", str(tiny_model_dir), *GREEDY, str(chats))
    assert warm.returncode == 0 and "into the cache in" in warm.stderr, warm.stderr
    hidden = "sys.modules['torch'] = sys.modules['transformers'] = None"  # importing either now fails
    bare = command("-m", str(tiny_model_dir), *GREEDY, str(chats), hook=hidden)
    assert bare.returncode == 0, bare.stderr
    assert "from the CTranslate2 cache" in bare.stderr and summaries(bare.stdout) == summaries(warm.stdout)
    cold = command("-m", str(tiny_model_dir), "--fast", *GREEDY, str(chats), hook=hidden)
    assert cold.returncode != 0  # the hook has teeth: converting needs them


@pytest.mark.slow
def test_two_first_runs_at_once_leave_one_entry_and_the_same_summaries(tiny_model_dir, cache, chats):
    args = [sys.executable, "-m", "dialogsum_batch", "-m", str(tiny_model_dir), *GREEDY, str(chats)]
    runs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=launch_env())]
    runs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=launch_env()))
    outputs = [run.communicate(timeout=300) for run in runs]
    assert all(run.returncode == 0 for run in runs), [err[-2000:] for _, err in outputs]
    logs = "".join(err for _, err in outputs)
    assert logs.count("into the cache in") == 1, logs  # one converted; the other waited, or came after
    assert summaries(outputs[0][0]) == summaries(outputs[1][0]) and len(summaries(outputs[0][0])) == 40
    (entry,) = [path for path in cache.iterdir() if path.is_dir() and not path.name.startswith(".")]
    assert is_complete(entry, entry.name, DigestIndex(cache / "digests.json"))


# ---------------------------------------------------------------------------- the parts that replace transformers


@pytest.mark.parametrize("layout", ["tiny", "legacy"])
def test_the_light_tokenizer_equals_transformers(tiny_model_dir, cache, tmp_path, layout):
    """tokenizer.json read by the tokenizers library: the ids, tokens and text of transformers' own tokenizer
    of the source folder (a transformers-4 spiece.model one included), cut at any limit."""
    source = tiny_model_dir if layout == "tiny" else build_legacy_checkpoint(tiny_model_dir, tmp_path / "legacy")
    entry = cached_conversion(Conversion(Path(source), "float32", layout))
    light, reference = load_light_tokenizer(str(entry)), AutoTokenizer.from_pretrained(source)
    assert light is not None
    texts = [row["dialogue"] for row in generate(100, seed=31)]
    texts += ["Anna: 🍕 <mask_1> café  don't , it's ? <unk_5> </s> x\n", "", "A: " + "word " * 2000]
    for limit in (1024, 64, 8):
        assert encode_texts(light, texts, limit) == encode_texts(reference, texts, limit)
    rows = [e.ids for e in encode_texts(reference, texts, 1024)] + [list(range(120))]
    assert [light.convert_ids_to_tokens(r) for r in rows] == [reference.convert_ids_to_tokens(r) for r in rows]
    assert [light.decode(r, skip_special_tokens=True) for r in rows] == [
        reference.decode(r, skip_special_tokens=True) for r in rows
    ]
    assert (light.eos_token, light.eos_token_id) == (reference.eos_token, reference.eos_token_id)


def test_a_tokenizer_only_transformers_reads_is_left_to_it(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{}")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "T5Tokenizer"}))
    assert load_light_tokenizer(str(tmp_path)) is None


def test_generation_values_decode_as_transformers_generation_config(tiny_model_dir, tmp_path):
    hub_like = {"num_beams": 8, "length_penalty": 0.8, "max_length": 128, "min_length": 32, "forced_eos_token_id": 1}
    (tmp_path / "generation_config.json").write_text(json.dumps(hub_like))
    for folder in (tiny_model_dir, tmp_path):
        for decode in (DecodeSettings(), DecodeSettings(num_beams=1, max_new_tokens=7, no_repeat_ngram_size=2)):
            reference = GenerationConfig.from_pretrained(folder)
            reference.update(**decode.overrides())
            assert decoding_options(load_generation(str(folder), decode)) == decoding_options(reference)
    assert GenerationValues({}).num_beams is None


def test_every_surface_loads_through_the_same_choice(tiny_model_dir, cache):
    """evaluate, the Python API and Ray call load_backend: its auto is the command's."""
    backend = load_backend(ModelSettings(name=str(tiny_model_dir), threads=1), DecodeSettings())
    assert backend.name == "ctranslate2" and backend.describe()["dtype"] == "float32"
