"""Transformers-4-era Pegasus folders (as the Hub's SAMSum models are) through every entry point.

Fixture (a) is laid out as ``transformersbook/pegasus-samsum``: spiece.model, legacy tokenizer files,
decoding keys in config.json, safetensors, no tokenizer.json or generation_config.json. Fixture (b) is
the same with ``pytorch_model.bin`` only, as ``google/pegasus-cnn_dailymail``'s main branch. Both are
the session's tiny model renumbered (dialogsum_batch.fixtures.legacy), so (a) must compute the tiny model's logits
for the same pieces. About 20 s on one core.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import read_jsonl
from invoke import Context, MockContext
from invoke.exceptions import Exit

from dialogsum_batch.backends.common import encode_texts
from dialogsum_batch.cli import main as cli_main
from dialogsum_batch.fixtures import project_data_dir
from dialogsum_batch.fixtures.legacy import DECODING, OFFSET, build_legacy_checkpoint
from dialogsum_batch.tasks.evaluation import evaluate as evaluate_task
from dialogsum_batch.tasks.export import export as export_task
from dialogsum_batch.tasks.training import finetune as finetune_task

TEST_FILE = project_data_dir() / "test.jsonl"
LEGACY_FILES = {"config.json", "spiece.model", "special_tokens_map.json", "tokenizer_config.json"}
# A few steps on a few synthetic chats: enough to show that training starts from the folder.
QUICK_RUN = [
    "max_steps=2",
    "eval_steps=2",
    "save_steps=2",
    "logging_steps=1",
    "synthetic_train=16",
    "synthetic_validation=4",
    "project_data=false",
    "per_device_train_batch_size=4",
]


@pytest.fixture(scope="session")
def legacy_a(tiny_model_dir, tmp_path_factory) -> Path:
    """(a): the transformers-4 layout with model.safetensors."""
    return build_legacy_checkpoint(tiny_model_dir, tmp_path_factory.mktemp("legacy") / "pegasus-samsum")


@pytest.fixture(scope="session")
def legacy_b(tiny_model_dir, tmp_path_factory) -> Path:
    """(b): the same with pickle weights (pytorch_model.bin) only."""
    return build_legacy_checkpoint(tiny_model_dir, tmp_path_factory.mktemp("legacy") / "pegasus-cnn", pickle_only=True)


def serve(model: Path, out: Path, *options: str) -> tuple[list[dict], dict]:
    """``dialogsum-batch -m MODEL data/test.jsonl --metrics-out``: the summaries and the metrics."""
    metrics = out.with_suffix(".metrics.json")
    result = CliRunner().invoke(
        cli_main, ["-m", str(model), str(TEST_FILE), "--metrics-out", str(metrics), "--quiet", *options]
    )
    assert result.exit_code == 0, result.output
    return read_jsonl(result.stdout), json.loads(metrics.read_text())


@pytest.fixture(scope="session")
def served_a(legacy_a, tmp_path_factory) -> tuple[list[dict], dict]:
    return serve(legacy_a, tmp_path_factory.mktemp("served") / "a")


def summaries(rows: list[dict]) -> list[str]:
    return [row["summary"] for row in rows]


def dialogues() -> list[str]:
    """Every dialogue in the project's data/*.jsonl files."""
    return [
        json.loads(line)["dialogue"]
        for path in sorted(project_data_dir().glob("*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def decoding_settings(metrics: dict) -> dict:
    generation = metrics["model"]["generation"]
    return {key: generation[key] for key in DECODING}


# ---------------------------------------------------------------------------- the fixtures themselves


def test_folders_are_laid_out_as_the_transformers_4_hub_repos(legacy_a, legacy_b):
    import sentencepiece as spm
    import torch

    assert {p.name for p in legacy_a.iterdir()} == LEGACY_FILES | {"model.safetensors"}
    assert {p.name for p in legacy_b.iterdir()} == LEGACY_FILES | {"pytorch_model.bin"}
    sp = spm.SentencePieceProcessor(model_file=str(legacy_a / "spiece.model"))
    assert [sp.id_to_piece(i) for i in range(3)] == ["<pad>", "</s>", "<unk>"]
    config = json.loads((legacy_a / "config.json").read_text())
    assert {key: config[key] for key in DECODING} == {
        "num_beams": 8,
        "length_penalty": 0.8,
        "max_length": 128,
        "min_length": 32,
    }
    assert config["vocab_size"] == sp.get_piece_size() + OFFSET
    assert config["architectures"] == ["PegasusForConditionalGeneration"]
    assert (config["normalize_before"], config["normalize_embedding"]) == (True, False)
    assert config["transformers_version"].startswith("4.")
    tokenizer = json.loads((legacy_a / "tokenizer_config.json").read_text())
    assert (tokenizer["offset"], tokenizer["tokenizer_class"], tokenizer["mask_token"]) == (
        103,
        "PegasusTokenizer",
        "<mask_2>",
    )
    extra = json.loads((legacy_a / "special_tokens_map.json").read_text())["additional_special_tokens"]
    assert extra == ["<mask_1>"] + [f"<unk_{i}>" for i in range(2, 103)]
    state = torch.load(legacy_b / "pytorch_model.bin", weights_only=True)
    assert state["lm_head.weight"].shape == (config["vocab_size"], config["d_model"])


def test_token_ids_are_sentencepiece_ids_plus_the_offset_then_eos(legacy_a, record_property):
    import sentencepiece as spm
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(legacy_a)
    sp = spm.SentencePieceProcessor(model_file=str(legacy_a / "spiece.model"))
    texts = dialogues()
    encoded = encode_texts(tokenizer, texts, 1024)  # what both backends feed the model
    agree = sum(
        row.ids == [i + OFFSET for i in sp.encode(text)] + [1] for row, text in zip(encoded, texts, strict=True)
    )
    record_property("legacy_token_id_agreement", f"{agree}/{len(texts)}")
    print(f"token ids agree with SentencePiece + {OFFSET} on {agree}/{len(texts)} dialogues")
    assert len(texts) >= 80 and agree >= 0.99 * len(texts)
    assert tokenizer.unk_token_id == sp.unk_id() + OFFSET and tokenizer.eos_token_id == 1


def test_surrounding_whitespace_adds_no_token(legacy_a):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(legacy_a)
    text = "Anna: are we still on for 7?\nTom: yes"
    plain, padded = encode_texts(tokenizer, [text, f"  {text} \n"], 1024)
    assert padded.ids == plain.ids


# ---------------------------------------------------------------------------- (a): no flags needed


def test_serves_with_the_decoding_settings_of_its_config_json(served_a, record_property):
    rows, metrics = served_a
    settings = decoding_settings(metrics)
    record_property("legacy_decoding_settings", json.dumps(settings))
    print(f"decoding settings read from fixture (a): {settings}")
    assert settings == {"num_beams": 8, "length_penalty": 0.8, "max_length": 128, "min_length": 32}
    assert len(rows) == metrics["records"] == 12 and all(row["summary"] for row in rows)


def test_computes_what_the_tiny_model_it_renumbers_computes(legacy_a, tiny_model_dir):
    """Same pieces, same logits: the legacy folder is the tiny model under the public numbering."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    texts = [json.loads(line)["dialogue"] for line in TEST_FILE.read_text(encoding="utf-8").splitlines()][:4]
    tiny_ids = encode_texts(AutoTokenizer.from_pretrained(tiny_model_dir), texts, 1024)
    legacy_ids = encode_texts(AutoTokenizer.from_pretrained(legacy_a), texts, 1024)
    # tiny: <pad> </s> <mask_1> <mask_2> <unk> pieces...; legacy: 101 pretraining-only ids before <unk>
    size = len(AutoTokenizer.from_pretrained(tiny_model_dir))
    to_legacy = torch.tensor([i if i < 4 else i + OFFSET - 2 for i in range(size)])
    assert [to_legacy[row.ids].tolist() for row in tiny_ids] == [row.ids for row in legacy_ids]
    tiny, legacy = (AutoModelForSeq2SeqLM.from_pretrained(path).eval() for path in (tiny_model_dir, legacy_a))
    for tiny_row, legacy_row in zip(tiny_ids, legacy_ids, strict=True):
        with torch.inference_mode():  # teacher-forced on the dialogue's first pieces
            expected = tiny(
                input_ids=torch.tensor([tiny_row.ids]), decoder_input_ids=torch.tensor([[0] + tiny_row.ids[:15]])
            ).logits
            got = legacy(
                input_ids=torch.tensor([legacy_row.ids]), decoder_input_ids=torch.tensor([[0] + legacy_row.ids[:15]])
            ).logits
        torch.testing.assert_close(got[..., to_legacy], expected, atol=1e-4, rtol=1e-4)
        assert got[..., 4 : OFFSET + 2].max() < -1000  # <unk_2>..<unk_102> are never generated


def test_finetune_trains_from_it(legacy_a, tmp_path, capsys):
    from transformers import AutoTokenizer

    run_dir = tmp_path / "run"
    finetune_task(Context(), preset="smoke", base_model=str(legacy_a), output_dir=str(run_dir), set_=QUICK_RUN)
    assert capsys.readouterr().out.strip() == str(run_dir)
    assert json.loads((run_dir / "train_results.json").read_text())["train_loss"] > 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["vocab_size"] == json.loads((legacy_a / "config.json").read_text())["vocab_size"]
    texts = dialogues()[:20]
    trained, base = AutoTokenizer.from_pretrained(run_dir), AutoTokenizer.from_pretrained(legacy_a)
    assert [row.ids for row in encode_texts(trained, texts, 512)] == [row.ids for row in encode_texts(base, texts, 512)]


def test_evaluate_scores_it_with_the_same_summaries(served_a, legacy_a, tmp_path):
    metrics = evaluate_task(
        MockContext(), data=str(TEST_FILE), model=str(legacy_a), output_dir=str(tmp_path / "eval"), bootstrap="50"
    )
    assert metrics["records"] == 12 and set(metrics["rouge"]) >= {"rouge1", "rougeL"}
    assert decoding_settings({"model": metrics["generation"]}) == decoding_settings(served_a[1])
    predictions = read_jsonl((tmp_path / "eval" / "predictions.jsonl").read_text(encoding="utf-8"))
    assert summaries(predictions) == summaries(served_a[0])


def test_hf_and_ctranslate2_exports_serve_with_its_settings(served_a, legacy_a, tmp_path):
    pytest.importorskip("ctranslate2")
    hf = export_task(MockContext(), model=str(legacy_a), format="hf", output_dir=str(tmp_path / "hf"))
    ct2 = export_task(MockContext(), model=str(legacy_a), format="ctranslate2", output_dir=str(tmp_path / "ct2"))
    rows, metrics = serve(hf, tmp_path / "hf-served")
    assert summaries(rows) == summaries(served_a[0])
    assert decoding_settings(metrics) == decoding_settings(served_a[1])
    rows, metrics = serve(ct2, tmp_path / "ct2-served")
    assert metrics["model"]["backend"] == "ctranslate2" and len(rows) == 12 and all(summaries(rows))
    assert decoding_settings(metrics) == decoding_settings(served_a[1])
    options = metrics["model"]["translate_options"]
    assert (options["beam_size"], options["length_penalty"], options["min_decoding_length"]) == (8, 0.8, 31)


# ---------------------------------------------------------------------------- (b): pickle only


def cli_refusal(model: Path) -> str:
    result = CliRunner().invoke(cli_main, ["-m", str(model), str(TEST_FILE), "--quiet"])
    assert result.exit_code == 1 and result.stdout == ""
    return result.stderr.strip()


def task_refusal(task, **options) -> str:
    with pytest.raises(Exit) as raised:
        task(MockContext(), **options)
    assert raised.value.code == 1
    return str(raised.value.message).strip()


def test_pickle_only_is_refused_in_one_line_by_every_entry_point(legacy_b, tmp_path):
    refusals = {
        "dialogsum-batch": cli_refusal(legacy_b),
        "finetune": task_refusal(
            finetune_task, preset="smoke", base_model=str(legacy_b), output_dir=str(tmp_path / "run")
        ),
        "evaluate": task_refusal(
            evaluate_task, data=str(TEST_FILE), model=str(legacy_b), output_dir=str(tmp_path / "eval")
        ),
        "export": task_refusal(export_task, model=str(legacy_b), output_dir=str(tmp_path / "out")),
    }
    for entry, message in refusals.items():
        assert "\n" not in message and "pickle" in message, (entry, message)
        assert ("allow_pickle=true" if entry == "finetune" else "--allow-pickle") in message, (entry, message)
    assert not (tmp_path / "run").exists() and not (tmp_path / "out").exists()


def test_pickle_only_works_everywhere_when_allowed(served_a, legacy_b, tmp_path):
    rows, _ = serve(legacy_b, tmp_path / "served", "--allow-pickle")
    assert summaries(rows) == summaries(served_a[0])
    metrics = evaluate_task(
        MockContext(),
        data=str(TEST_FILE),
        model=str(legacy_b),
        output_dir=str(tmp_path / "eval"),
        bootstrap="10",
        limit="2",
        allow_pickle=True,
    )
    assert metrics["records"] == 2
    run_dir = tmp_path / "run"
    finetune_task(
        Context(),
        preset="smoke",
        base_model=str(legacy_b),
        output_dir=str(run_dir),
        set_=[*QUICK_RUN, "allow_pickle=true"],
    )
    assert (run_dir / "model.safetensors").is_file()
    for form in ("hf", "ctranslate2") if importlib.util.find_spec("ctranslate2") else ("hf",):
        out = export_task(
            MockContext(), model=str(legacy_b), format=form, output_dir=str(tmp_path / form), allow_pickle=True
        )
        assert (out / ("model.safetensors" if form == "hf" else "model.bin")).is_file()
