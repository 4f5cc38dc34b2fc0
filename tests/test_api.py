"""The Python API: ``Summarizer`` loads once, streams in order, and writes the command's rows."""

from __future__ import annotations

import itertools

import pytest
from click.testing import CliRunner
from conftest import FakeBackend, read_jsonl, write_jsonl

import dialogsum_batch
from dialogsum_batch import Summarizer
from dialogsum_batch.cli import main
from dialogsum_batch.config import RunSettings, run_settings
from dialogsum_batch.errors import InputError
from dialogsum_batch.fixtures.synthetic import generate


def fake(**options) -> tuple[Summarizer, FakeBackend]:
    backend = FakeBackend()
    return Summarizer.from_settings(run_settings(**options), backend), backend


def test_public_surface():
    assert dialogsum_batch.__all__ == ["Summarizer", "__version__"]
    assert Summarizer.__doc__ and Summarizer.summarize.__doc__


def test_strings_and_dicts_in_input_order_with_the_commands_fields():
    summarizer, _ = fake()
    rows = list(
        summarizer.summarize(
            [
                "Anna: hi\nBen: hello there, how are you doing today",
                {"id": "x7", "dialogue": "Cleo: lunch?\nDan: yes", "summary": "Cleo asks Dan to lunch.", "k": 1},
                "Eve: bye",
            ]
        )
    )
    assert [row["id"] for row in rows] == ["0", "x7", "2"]
    assert [row["summary"] for row in rows] == ["Anna: hi", "Cleo: lunch?", "Eve: bye"]
    assert rows[1]["reference"] == "Cleo asks Dan to lunch." and set(rows[1]["rouge"]) >= {"rouge1", "rougeL"}
    assert "k" not in rows[1]  # kept fields only when asked for, as in the command


def test_a_generator_streams_through_in_bounded_windows():
    summarizer, backend = fake(sort_window=16)
    stream = (f"P{i}: message {i}" for i in itertools.count())  # endless: only what is taken is read
    taken = list(itertools.islice(summarizer.summarize(stream), 40))
    assert [row["id"] for row in taken] == [str(i) for i in range(40)]
    assert sum(backend.batches) <= 48  # three windows of 16, not the whole (endless) stream


def test_call_on_one_string_returns_its_summary():
    summarizer, _ = fake()
    assert summarizer("Anna: see you at 5\nBen: ok") == "Anna: see you at 5"
    with pytest.raises(InputError, match="empty"):
        summarizer("   ")


@pytest.mark.parametrize("policy", ["fail", "skip", "row"])
def test_bad_records_follow_on_error(policy):
    heard: list[str] = []
    summarizer = Summarizer.from_settings(run_settings(on_error=policy), FakeBackend(), log=heard.append)
    dialogues = ["A: one", {"dialogue": 5}, "B: three"]
    if policy == "fail":
        seen = []
        with pytest.raises(InputError, match="<input>:2: field 'dialogue' must be a string"):
            seen.extend(summarizer.summarize(dialogues))
        assert [row["id"] for row in seen] == ["0"]  # those before it came out first
        return
    rows = list(summarizer.summarize(dialogues))
    if policy == "skip":
        assert [row["id"] for row in rows] == ["0", "2"]
        assert [line for line in heard if "must be a string" in line] == [
            "skipped <input>:2: field 'dialogue' must be a string, got number"
        ]  # only the log says what was left out
    else:
        assert [row.get("id") for row in rows] == ["0", None, "2"]
        assert rows[1]["line"] == 2 and "must be a string" in rows[1]["error"]
        assert not [line for line in heard if "must be a string" in line]  # the row says it; nothing was skipped


def test_unknown_options_and_policies_are_refused():
    with pytest.raises(TypeError, match="unknown option.*beams.*known:.*num_beams"):
        Summarizer("m", beams=4)
    from dialogsum_batch.errors import ConfigError

    with pytest.raises(ConfigError, match="on_error"):
        Summarizer.from_settings(RunSettings(on_error="ignore"), FakeBackend())


def test_real_model_gives_the_commands_rows(tiny_model_dir, tmp_path):
    """On the tiny Pegasus the API and the command agree row for row (ids, summaries, ROUGE, order)."""
    records = list(generate(12, seed=3))
    source = write_jsonl(tmp_path / "in.jsonl", records)
    options = {"num_beams": 1, "max_new_tokens": 8, "threads": 1, "backend": "transformers"}
    result = CliRunner().invoke(
        main,
        ["-m", str(tiny_model_dir), str(source), "--num-beams", "1", "--max-new-tokens", "8", "--threads", "1"]
        + ["--backend", "transformers"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    summarizer = Summarizer(str(tiny_model_dir), **options)
    rows = list(summarizer.summarize(records))
    command = read_jsonl(result.stdout)
    assert [(r["id"], r["summary"], r["rouge"]) for r in rows] == [(r["id"], r["summary"], r["rouge"]) for r in command]
    assert summarizer(records[0]["dialogue"]) == rows[0]["summary"]
    assert summarizer.describe()["backend"] == "transformers"
