"""Evaluation: ROUGE exact against rouge_score, seeded bootstrap, several references, baselines, outputs, task."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeBackend, read_jsonl, write_jsonl
from invoke import Context, MockContext
from invoke.exceptions import Exit
from rouge_score import rouge_scorer

from dialogsum_batch import rouge
from dialogsum_batch.errors import ConfigError, InputError
from dialogsum_batch.evaluation import (
    PLOT_FILE,
    baseline_predictions,
    binned_means,
    evaluate,
    make_settings,
    rows_to_records,
    summarize_predictions,
)
from dialogsum_batch.tasks.evaluation import evaluate as evaluate_task

TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
# Each text is one sentence per line, so every sentence splitter leaves it as it is and
# rouge_score can be called on the raw strings, exactly as HF's run_summarization would.
PAIRS = [  # (dialogue whose first line the fake backend echoes, reference)
    ("Amanda: I am running late for the meeting\nJerry: ok", "Amanda runs late for the meeting"),
    ("Tom: the cats were chasing mice all night\nAnn: lol", "Tom's cat chased a mouse all night\nAnn laughed"),
    ("Bob: see you at 5 pm at the station\nEve: sure", "Bob and Eve will meet at the station at 5 pm"),
    ("Kim: nothing in common here\nLeo: right", "Completely different words"),
    ("Max: pizza tonight?\nZoe: yes please", "Max and Zoe will have pizza tonight"),
]
SAMSUM_LIKE = "\r\n".join(
    [
        "Amanda: Hi!",  # 2 words
        "Jerry: Hey, what's up?",  # 4 words
        "Amanda: I baked cookies, want some?",  # 6 words
        "Jerry: Sure!",  # 2 words
        "Amanda: I'll bring you some tomorrow after work then",  # 9 words
        "Jerry: Great, thanks a lot, see you then",  # 8 words
    ]
)
LEAD3 = "Amanda: Hi!\nJerry: Hey, what's up?\nAmanda: I baked cookies, want some?"
LONGEST3 = (
    "Amanda: I baked cookies, want some?\nAmanda: I'll bring you some tomorrow after work then\n"
    "Jerry: Great, thanks a lot, see you then"
)


def expected_means(predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    """Mean over records of the best F x100 per type, from rouge_score called directly."""
    scorer = rouge_scorer.RougeScorer(TYPES, use_stemmer=True)
    best = [
        [max(scorer.score(ref.strip(), pred.strip())[t].fmeasure * 100 for ref in refs) for t in TYPES]
        for pred, refs in zip(predictions, references)
    ]
    return dict(zip(TYPES, np.mean(best, axis=0)))


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    rows = [{"id": f"p{i}", "dialogue": d, "summary": s} for i, (d, s) in enumerate(PAIRS)]
    return write_jsonl(tmp_path / "pairs.jsonl", rows)


@pytest.fixture
def chats_file(tmp_path) -> Path:
    rows = [
        {"id": "c1", "dialogue": SAMSUM_LIKE, "summary": LEAD3},
        {"id": "c2", "dialogue": "A: one two\nB: three\nC: four five six\nD: seven eight", "summary": "A: one."},
    ]
    return write_jsonl(tmp_path / "chats.jsonl", rows)


def run_fake(data: Path, out: Path, **options) -> dict:
    """Evaluate through the real engine with the fake backend (it echoes each dialogue's first line)."""
    return evaluate(
        "fake-model", data, output_dir=out, settings=make_settings("fake-model"), backend=FakeBackend(), **options
    )


# ---------------------------------------------------------------------------- exactness


def test_metrics_means_equal_rouge_score_on_hand_made_pairs(pairs_file, tmp_path):
    metrics = run_fake(pairs_file, tmp_path / "out", bootstrap=200)
    predictions = [dialogue.split("\n")[0] for dialogue, _ in PAIRS]
    expected = expected_means(predictions, [[summary] for _, summary in PAIRS])
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    for t in TYPES:
        assert saved["rouge"][t]["mean"] == pytest.approx(expected[t], abs=1e-9)
        assert saved["rouge"][t]["low"] <= saved["rouge"][t]["mean"] <= saved["rouge"][t]["high"]
    assert 0 < expected["rouge1"] < 100 and expected["rouge1"] != expected["rouge2"]  # the pairs are not trivial
    assert saved == json.loads(json.dumps(metrics))
    assert saved["records"] == 5 and saved["system"] == "model" and saved["splitter"] == rouge.SPLITTER


def test_stemming_is_on_and_per_record_rouge_is_full_precision(pairs_file, tmp_path):
    run_fake(pairs_file, tmp_path / "out", bootstrap=10)
    rows = read_jsonl((tmp_path / "out" / "predictions.jsonl").read_text())
    first = rows[0]  # "running late ... meeting" vs "runs late ... meeting": stems match
    assert first["summary"] == "Amanda: I am running late for the meeting"
    unstemmed = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=False).score(PAIRS[0][1], first["summary"])
    assert first["rouge"]["rouge1"] > unstemmed["rouge1"].fmeasure * 100
    assert first["rouge"] == rouge.score(first["summary"], first["references"])
    assert [row["id"] for row in rows] == ["p0", "p1", "p2", "p3", "p4"]
    assert rows[3]["rouge"]["rouge1"] == 0.0


# ---------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_reproducible_for_a_seed_and_changes_with_it(pairs_file, tmp_path):
    first = run_fake(pairs_file, tmp_path / "a", bootstrap=300, seed=7)["rouge"]
    again = run_fake(pairs_file, tmp_path / "b", bootstrap=300, seed=7)["rouge"]
    other = run_fake(pairs_file, tmp_path / "c", bootstrap=300, seed=8)["rouge"]
    assert first == again
    assert any(first[t]["low"] != other[t]["low"] or first[t]["high"] != other[t]["high"] for t in TYPES)
    rows = read_jsonl((tmp_path / "a" / "predictions.jsonl").read_text())
    assert first == rouge.bootstrap_interval([row["rouge"] for row in rows], 300, 7)


# ---------------------------------------------------------------------------- several references


def test_dialogsum_style_references_score_against_the_best_one(tmp_path):
    rows = [
        {
            "fname": "test_1",
            "dialogue": "#Person1#: lunch at noon?\n#Person2#: fine",
            "topic": "lunch",
            "summary1": "They plan lunch.",
            "summary2": "#Person1# asks about lunch at noon.",
            "summary3": "Food.",
        },
        {
            "fname": "test_2",
            "dialogue": "#Person1#: the train is late\n#Person2#: again",
            "topic": "train",
            "summary1": "The train is late again.",
            "summary2": "Delays.",
            "summary3": "A late train annoys them.",
        },
    ]
    data = write_jsonl(tmp_path / "dialogsum.test.jsonl", rows)
    metrics = evaluate(None, data, output_dir=tmp_path / "out", baseline="lead3", bootstrap=50)
    saved = read_jsonl((tmp_path / "out" / "predictions.jsonl").read_text())
    assert [row["id"] for row in saved] == ["test_1", "test_2"]
    assert saved[0]["references"] == [rows[0]["summary1"], rows[0]["summary2"], rows[0]["summary3"]]
    assert saved[0]["reference"] == rows[0]["summary1"]  # the name and type the command's output uses
    for row in saved:
        singles = [rouge.score(row["summary"], ref) for ref in row["references"]]
        assert row["rouge"] == {t: max(s[t] for s in singles) for t in TYPES}
    assert saved[0]["rouge"]["rouge1"] > rouge.score(saved[0]["summary"], "They plan lunch.")["rouge1"]
    assert metrics["multi_reference"] == 2


def test_rows_to_records_takes_references_else_summary():
    records = rows_to_records(
        [
            {"id": "a", "dialogue": "A: hi", "summary": "s", "references": ["s", "t"]},
            {"dialogue": "B: yo", "summary": "u"},
        ],
        source="mem",
    )
    assert records[0].references == ("s", "t") and records[1].references == ("u",)
    assert records[1].id == "mem:2" and records[1].index == 1
    with pytest.raises(InputError, match="mem:1: no reference summary"):
        rows_to_records([{"dialogue": "A: hi", "summary": " "}], source="mem")


# ---------------------------------------------------------------------------- baselines


def test_both_baselines_end_to_end_on_hand_checked_dialogues(chats_file, tmp_path):
    lead = evaluate(None, chats_file, output_dir=tmp_path / "lead", baseline="lead3", bootstrap=20)
    longest = evaluate(None, chats_file, output_dir=tmp_path / "longest", baseline="longest3", bootstrap=20)
    lead_rows = read_jsonl((tmp_path / "lead" / "predictions.jsonl").read_text())
    longest_rows = read_jsonl((tmp_path / "longest" / "predictions.jsonl").read_text())
    assert [r["summary"] for r in lead_rows] == [LEAD3, "A: one two\nB: three\nC: four five six"]
    assert [r["summary"] for r in longest_rows] == [LONGEST3, "A: one two\nC: four five six\nD: seven eight"]
    assert lead_rows[0]["rouge"] == {t: 100.0 for t in TYPES}  # the reference is the lead itself
    assert lead["baseline"] == "lead3" and lead["model"] is None and lead["generation"] is None
    assert lead["length"]["words"] == {"mean": (12 + 9) / 2, "max": 12} and lead["length"]["tokens"] is None
    assert longest["length"]["words"]["max"] == 23 and longest["truncated"] == 0


def test_unknown_or_missing_system_is_a_config_error(chats_file, tmp_path):
    with pytest.raises(ConfigError, match="nothing to evaluate"):
        evaluate(None, chats_file, output_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown baseline 'lead5'; known: lead3, longest3"):
        evaluate(None, chats_file, output_dir=tmp_path, baseline="lead5")
    with pytest.raises(ConfigError, match="unknown baseline"):
        baseline_predictions([], "first")


# ---------------------------------------------------------------------------- outputs


def test_writes_predictions_metrics_report_and_plot(chats_file, tmp_path):
    out = tmp_path / "out"
    run_fake(chats_file, out, baseline="longest3", bootstrap=20, limit=1)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["predictions.jsonl", "predictions-longest3.jsonl", "metrics.json", "report.md", PLOT_FILE]
    )
    assert (out / PLOT_FILE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model_rows = read_jsonl((out / "predictions.jsonl").read_text())
    assert len(model_rows) == 1 and model_rows[0]["summary"] == "Amanda: Hi!" and model_rows[0]["tokens"] == 3
    assert set(model_rows[0]) >= {"id", "dialogue", "references", "summary", "rouge", "words", "truncated"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["systems"]) == ["model", "longest3"] and metrics["data"]["limit"] == 1
    assert metrics["generation"] == {"backend": "fake"} and metrics["length"]["tokens"] == {"mean": 3.0, "max": 3}
    report = (out / "report.md").read_text()
    model_mean = metrics["systems"]["model"]["rouge"]["rouge1"]["mean"]
    assert f"| model | 1 | {model_mean:.2f} [" in report and "| longest3 | 1 |" in report
    assert "longest3 32.46 / 10.27" in report and rouge.SPLITTER in report


def test_binned_means_average_equal_count_bins():
    x_means, y_means = binned_means([1, 2, 3, 4, 10, 20], [0, 10, 20, 30, 40, 50], bins=3)
    assert x_means.tolist() == [1.5, 3.5, 15.0] and y_means.tolist() == [5.0, 25.0, 45.0]


def test_summarize_predictions_counts_truncation_and_lengths():
    rows = [
        {"rouge": {t: 50.0 for t in TYPES}, "references": ["a"], "words": w, "tokens": k, "truncated": c}
        for w, k, c in [(3, 5, True), (5, 9, False)]
    ]
    summary = summarize_predictions(rows, bootstrap=10)
    assert summary["truncated"] == 1 and summary["length"]["tokens"] == {"mean": 7.0, "max": 9}
    assert summary["rouge"]["rouge2"] == {"mean": 50.0, "low": 50.0, "high": 50.0}


# ---------------------------------------------------------------------------- tiny model and the task


def test_tiny_model_side_by_side_with_a_baseline(tiny_model_dir, chats_file, tmp_path):
    settings = make_settings(str(tiny_model_dir), device="cpu", num_beams=1, max_new_tokens=6, batch_tokens=64)
    metrics = evaluate(
        str(tiny_model_dir), chats_file, output_dir=tmp_path / "out", baseline="lead3", settings=settings, bootstrap=20
    )
    assert metrics["model"] == str(tiny_model_dir) and metrics["system"] == "model"
    assert metrics["generation"]["backend"] == "ctranslate2"  # evaluate serves as the command does (choose_backend)
    assert metrics["generation"]["dtype"] == "float32"
    assert metrics["generation"]["generation"]["max_new_tokens"] == 6
    assert 1 <= metrics["length"]["tokens"]["max"] <= 6
    rows = read_jsonl((tmp_path / "out" / "predictions.jsonl").read_text())
    assert [row["id"] for row in rows] == ["c1", "c2"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "| model | 2 |" in report and "| lead3 | 2 |" in report


@pytest.mark.parametrize("context", [MockContext, Context])
def test_invoke_task_evaluates_a_baseline(context, chats_file, tmp_path, capsys):
    out = tmp_path / "task"
    metrics = evaluate_task(
        context(), data=str(chats_file), baseline="longest3", output_dir=str(out), bootstrap="30", seed="3", limit="1"
    )
    assert metrics["records"] == 1 and metrics["bootstrap"]["resamples"] == 30 and metrics["bootstrap"]["seed"] == 3
    assert (out / "metrics.json").is_file() and (out / PLOT_FILE).is_file()
    assert "longest3: ROUGE-1/2/L/Lsum" in capsys.readouterr().out


def test_invoke_task_turns_errors_into_one_line_exits(chats_file, tmp_path):
    with pytest.raises(Exit) as missing:
        evaluate_task(MockContext(), baseline="lead3")
    assert missing.value.code == 2
    with pytest.raises(Exit) as bad:
        missing_data = str(tmp_path / "nope.jsonl")
        evaluate_task(MockContext(), data=missing_data, baseline="lead3", output_dir=str(tmp_path / "o"))
    assert bad.value.code == 1 and "nope.jsonl: no such file or folder" in str(bad.value.message)
