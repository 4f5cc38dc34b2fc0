"""The command through the front door: CliRunner, stdout parsed as JSONL, stderr checked apart."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import read_jsonl, write_jsonl
from rouge_score import rouge_scorer

from dialogsum_batch.cli import main

DIALOGUES = [
    {"id": "a", "dialogue": "Anna: see you at 5?\nBen: sure, at the station", "summary": "Anna will see Ben at 5."},
    {
        "id": "b",
        "dialogue": "Carl: lost my keys 😩\nDina: check the car\nCarl: found them",
        "summary": "Carl lost keys.",
    },
    {"id": "c", "dialogue": "Eve: pizza tonight?\nFay: yes!!", "summary": "Eve and Fay will have pizza tonight."},
]


def run(args, stdin=None):
    return CliRunner().invoke(main, args, input=stdin, catch_exceptions=False)


def as_jsonl(rows):
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def test_stdin_jsonl_in_input_order(fake_backend):
    result = run(["-m", "unused", "--max-batch-size", "2"], stdin=as_jsonl(DIALOGUES))
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(result.stdout)
    assert [r["id"] for r in rows] == ["a", "b", "c"]
    assert rows[1]["summary"] == "Carl: lost my keys 😩"
    assert fake_backend.batches == [2, 1]
    assert "3 summarized, 0 errors" in result.stderr


def test_rouge_per_record_and_aggregate_match_rouge_score(fake_backend, tmp_path):
    metrics = tmp_path / "metrics.json"
    result = run(["-m", "x", "--metrics-out", str(metrics)], stdin=as_jsonl(DIALOGUES))
    rows = read_jsonl(result.stdout)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    expected = []
    for row, source in zip(rows, DIALOGUES):
        direct = scorer.score(source["summary"], row["summary"])
        assert row["reference"] == source["summary"]
        for key in ("rouge1", "rouge2", "rougeL"):
            assert abs(row["rouge"][key] - 100 * direct[key].fmeasure) < 1e-3
        expected.append(100 * direct["rouge1"].fmeasure)
    report = json.loads(metrics.read_text())
    assert abs(report["rouge"]["rouge1"] - sum(expected) / 3) < 1e-3
    assert report["records"] == 3 and report["rouge_records"] == 3
    assert "ROUGE-1/2/L/Lsum" in result.stderr


def test_text_file_records_get_file_line_ids(fake_backend, tmp_path):
    path = tmp_path / "chats.txt"
    path.write_text("Anna: hi\nBen: hello\n\n\nCarl: yo\r\nDina: sup\n", encoding="utf-8")
    result = run(["-m", "x", str(path)])
    rows = read_jsonl(result.stdout)
    assert [r["id"] for r in rows] == [f"{path}:1", f"{path}:5"]
    assert [r["summary"] for r in rows] == ["Anna: hi", "Carl: yo"]
    assert "reference" not in rows[0]


def test_text_from_stdin_gets_line_ids_and_format_flag(fake_backend):
    result = run(["-m", "x", "--format", "text", "-"], stdin="A: one\nB: two\n\nC: three\n")
    assert [r["id"] for r in read_jsonl(result.stdout)] == ["<stdin>:1", "<stdin>:4"]


def test_stdin_ids_never_collide_with_real_ids(fake_backend):
    rows = [{"id": "1", "dialogue": "A: real one"}, {"dialogue": "B: no id"}, {"id": "2", "dialogue": "C: real two"}]
    ids = [r["id"] for r in read_jsonl(run(["-m", "x"], stdin=as_jsonl(rows)).stdout)]
    assert ids == ["1", "<stdin>:2", "2"] and len(set(ids)) == 3


def test_gzip_jsonl_and_several_files_keep_order(fake_backend, tmp_path):
    first = tmp_path / "one.jsonl.gz"
    with gzip.open(first, "wt", encoding="utf-8") as stream:
        stream.write(as_jsonl(DIALOGUES[:2]))
    second = write_jsonl(tmp_path / "two.jsonl", DIALOGUES[2:])
    result = run(["-m", "x", str(first), str(second), "--sort-window", "2"])
    assert [r["id"] for r in read_jsonl(result.stdout)] == ["a", "b", "c"]


def test_custom_fields_and_keep_fields(fake_backend):
    rows = [{"uid": 7, "chat": "Zed: hi there", "gold": ["Zed says hi.", "Zed greets."], "lang": "en", "x": 1}]
    args = [
        "-m",
        "x",
        "--text-field",
        "chat",
        "--id-field",
        "uid",
        "--reference-field",
        "gold",
        "--keep-fields",
        "lang",
    ]
    out = read_jsonl(run(args, stdin=as_jsonl(rows)).stdout)[0]
    assert out["id"] == "7" and out["lang"] == "en" and "x" not in out
    assert out["reference"] == "Zed says hi." and out["references"] == ["Zed says hi.", "Zed greets."]


def test_truncated_records_are_flagged(fake_backend):
    long = {"id": "long", "dialogue": "A: " + "word " * 200}
    out = read_jsonl(run(["-m", "x"], stdin=as_jsonl([long, DIALOGUES[0]])).stdout)
    assert out[0]["truncated"] is True and "truncated" not in out[1]


def test_token_budget_cuts_batches_longest_first(fake_backend):
    rows = [{"id": str(i), "dialogue": "A: " + "w " * (i * 5)} for i in range(1, 9)]
    result = run(["-m", "x", "--batch-tokens", "100"], stdin=as_jsonl(rows))
    assert [r["id"] for r in read_jsonl(result.stdout)] == [str(i) for i in range(1, 9)]
    assert sum(fake_backend.batches) == 8 and len(fake_backend.batches) > 1


def test_output_file_and_quiet(fake_backend, tmp_path):
    out = tmp_path / "out" / "summaries.jsonl"
    result = run(["-m", "x", "-o", str(out), "-q"], stdin=as_jsonl(DIALOGUES))
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""
    assert len(read_jsonl(out.read_text())) == 3


def test_usage_errors_exit_2(fake_backend):
    assert run(["--resume"], stdin="").exit_code == 2
    assert run(["--dtype", "float16"], stdin="").exit_code == 2
    assert run(["--shard", "3/2"], stdin="").exit_code == 2
    assert run(["--errors-out", "x.jsonl"], stdin="").exit_code == 2


def test_missing_local_model_is_one_line(tmp_path):
    result = run(["-m", str(tmp_path / "nope")], stdin=as_jsonl(DIALOGUES))
    assert result.exit_code == 1
    assert "does not exist" in result.stderr and "DIALOGSUM_MODEL" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_unreachable_hub_fails_fast_naming_the_fix(monkeypatch):
    import time

    started = time.perf_counter()
    result = run(["-m", "someone/some-model-not-cached"], stdin=as_jsonl(DIALOGUES))
    assert result.exit_code == 1
    assert time.perf_counter() - started < 10
    assert "--model" in result.stderr and "DIALOGSUM_MODEL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_help_lists_exit_codes_and_examples():
    text = run(["summarize", "--help"]).stdout
    assert "75   locked" in text and "cat chats.jsonl | dialogsum-batch" in text and "DIALOGSUM_MODEL" in text


def test_group_help_lists_every_subcommand_and_the_exit_codes():
    text = run(["--help"]).stdout
    for name in ("summarize", "finetune", "evaluate", "export", "cache", "ray"):
        assert f"  {name} " in text
    assert "75   locked" in text and "Without a COMMAND, ``summarize`` runs" in text


@pytest.mark.parametrize("first", [["-m"], ["-"], [], ["--num-beams", "1", "-m"]])
def test_summarize_is_the_default_command(fake_backend, first):
    """Scripts that call ``dialogsum-batch [OPTIONS] [FILE]`` keep working through the default subcommand."""
    args = [*first, "fake-model"] if first and first[-1] == "-m" else first
    result = run(args, stdin=as_jsonl(DIALOGUES))
    assert result.exit_code == 0, result.stderr
    assert [row["id"] for row in read_jsonl(result.stdout)] == [d["id"] for d in DIALOGUES]
    explicit = run(["summarize", *args], stdin=as_jsonl(DIALOGUES))
    assert explicit.stdout == result.stdout


def test_every_subcommand_runs_from_any_folder_as_an_installed_command(tmp_path):
    """``python -m dialogsum_batch`` is the group, and each subcommand answers --help outside the checkout."""
    for name in ("summarize", "finetune", "evaluate", "export", "cache"):
        done = subprocess.run(
            [sys.executable, "-m", "dialogsum_batch", name, "--help"], cwd=tmp_path, capture_output=True, text=True
        )
        assert done.returncode == 0 and f"Usage: dialogsum-batch {name}" in done.stdout, done.stderr


def test_errors_end_every_subcommand_the_same_way(tmp_path):
    """One line naming the problem and exit 1, whatever the subcommand; --debug shows the traceback."""
    missing = str(tmp_path / "nowhere")
    cases = {
        "export": ["export", "--model", missing, "--output-dir", str(tmp_path / "out")],
        "evaluate": ["evaluate", "--baseline", "lead3", "--data", missing, "--output-dir", str(tmp_path / "e")],
        "finetune": ["finetune", "--preset", "no-such-preset", "--output-dir", str(tmp_path / "f")],
    }
    for name, args in cases.items():
        result = CliRunner().invoke(main, args)
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and " error: " in lines[0], (name, result.stderr)
        debug = CliRunner().invoke(main, [*args, "--debug"])
        assert debug.exit_code == 1 and debug.exception is not None and not isinstance(debug.exception, SystemExit)


def test_every_settings_option_takes_its_default_and_help_from_the_settings_field():
    """Defaults and help live in the settings dataclasses (config.OPTION_FIELDS); summarize and ray read them."""
    from dialogsum_batch.cli.ray import ray_command
    from dialogsum_batch.cli.summarize import summarize
    from dialogsum_batch.config import OPTION_FIELDS, default_of, help_of

    for command in (summarize, ray_command):
        settings = [param for param in command.params if param.name in OPTION_FIELDS and param.name != "shard"]
        assert len(settings) >= 20
        for param in settings:
            if not getattr(param, "is_flag", False) and not param.multiple:
                assert param.default == default_of(param.name), (command.name, param.name)
            assert param.help, (command.name, param.name)
        same = [p for p in settings if p.help == help_of(p.name)]
        assert len(same) >= len(settings) - 3  # a command may say more (ray: per actor), never restate a default
