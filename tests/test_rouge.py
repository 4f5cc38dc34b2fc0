"""ROUGE must equal rouge_score called the way evaluate / run_summarization call it."""

from __future__ import annotations

import random
import time

import pytest
from rouge_score import rouge_scorer

from dialogsum_batch import rouge

TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
REFERENCE_SCORER = rouge_scorer.RougeScorer(TYPES, use_stemmer=True)


def expected(prediction: str, reference: str) -> dict[str, float]:
    """rouge_score on already sentence-per-line text, F x100 (evaluate, use_aggregator=False)."""
    scores = REFERENCE_SCORER.score(reference, prediction)
    return {t: scores[t].fmeasure * 100 for t in TYPES}


def expected_multi(prediction: str, references: list[str]) -> dict[str, float]:
    scores = REFERENCE_SCORER.score_multi(references, prediction)
    return {t: scores[t].fmeasure * 100 for t in TYPES}


# (raw prediction, raw reference, prediction and reference as they should reach rouge_score)
PAIRS = [
    (
        "Amanda baked cookies.",
        "Amanda baked cookies and will bring Jerry some tomorrow.",
        "Amanda baked cookies.",
        "Amanda baked cookies and will bring Jerry some tomorrow.",
    ),
    ("Tom is running late.", "Tom runs late.", "Tom is running late.", "Tom runs late."),
    ("", "Olivia and Olivier are voting for liberals.", "", "Olivia and Olivier are voting for liberals."),
    (
        "  Hannah asks Betty for Larry's number.  ",
        "Hannah needs Larry's number.",
        "Hannah asks Betty for Larry's number.",
        "Hannah needs Larry's number.",
    ),
    (
        "Eric will call Rob. Rob is busy today!",
        "Rob is busy. Eric will call him tomorrow.",
        "Eric will call Rob.\nRob is busy today!",
        "Rob is busy.\nEric will call him tomorrow.",
    ),
    (
        "Sam bought a car.<n>He likes it.",
        "Sam likes the car he bought.",
        "Sam bought a car.\nHe likes it.",
        "Sam likes the car he bought.",
    ),
    (
        "Meeting at 5 pm? Lenny agrees.",
        "Lenny and Bob meet at 5 pm.",
        "Meeting at 5 pm?\nLenny agrees.",
        "Lenny and Bob meet at 5 pm.",
    ),
    (
        "Jane is playing tennis\nwith Mark",
        "Jane plays tennis with Mark.",
        "Jane is playing tennis\nwith Mark",
        "Jane plays tennis with Mark.",
    ),
    (
        "Completely unrelated words here.",
        "Nothing in common at all.",
        "Completely unrelated words here.",
        "Nothing in common at all.",
    ),
    ("Identical summary text.", "Identical summary text.", "Identical summary text.", "Identical summary text."),
]


@pytest.mark.parametrize("raw_pred, raw_ref, pred, ref", PAIRS)
def test_score_equals_rouge_score(raw_pred, raw_ref, pred, ref):
    assert rouge.score(raw_pred, raw_ref) == pytest.approx(expected(pred, ref), abs=1e-12)


def test_stemming_matches_running_and_runs():
    scores = rouge.score("running", "runs")
    assert scores["rouge1"] == pytest.approx(100.0)


def test_empty_prediction_scores_zero():
    assert rouge.score("", "Amanda baked cookies.") == {t: 0.0 for t in TYPES}


def test_sentence_split_changes_only_rougelsum():
    pred, ref = "Rob is busy. Eric will call.", "Eric will call. Rob is busy."
    split = rouge.score(pred, ref)
    unsplit = expected(pred, ref)  # one line each: rougeLsum == rougeL
    assert split["rougeLsum"] == pytest.approx(100.0)
    assert unsplit["rougeLsum"] < 100.0
    for t in ("rouge1", "rouge2", "rougeL"):
        assert split[t] == pytest.approx(unsplit[t])


def test_pegasus_newline_marker_is_a_sentence_break_not_a_word():
    with_marker = rouge.score("Rob is busy.<n>Eric will call.", "Eric will call. Rob is busy.")
    assert with_marker["rouge1"] == pytest.approx(100.0)  # "<n>" did not count as "n"
    assert with_marker["rougeLsum"] == pytest.approx(100.0)
    assert rouge.prepare_text("A b.<n>C d.") == "A b.\nC d."


def test_multi_reference_keeps_best_f_per_type():
    refs = ["Tom runs late.", "Completely different reference about cats.", "Tom is late."]
    pred = "Tom is running late."
    got = rouge.score(pred, refs)
    assert got == pytest.approx(expected_multi(pred, refs), abs=1e-12)
    assert got["rouge1"] == pytest.approx(max(expected(pred, r)["rouge1"] for r in refs))
    assert rouge.score(pred, ("Tom runs late.",)) == rouge.score(pred, "Tom runs late.")


def test_multi_reference_rejects_empty_list():
    with pytest.raises(ValueError, match="at least one reference"):
        rouge.score("text", [])


def test_regex_fallback_splitter():
    text = "Hi Tom! Are you coming? Yes.\nSee you at 5.30 p.m. tomorrow"
    assert rouge.regex_sentences(text) == [
        "Hi Tom!",
        "Are you coming?",
        "Yes.",
        "See you at 5.30 p.m.",
        "tomorrow",
    ]
    assert rouge.regex_sentences("  \n ") == []


def test_splitter_falls_back_without_punkt(monkeypatch):
    def missing(*_args, **_kwargs):
        raise LookupError("Resource punkt_tab not found.")

    monkeypatch.setattr(rouge.nltk, "sent_tokenize", missing)
    name, split = rouge._pick_splitter()
    assert (name, split) == ("regex-fallback", rouge.regex_sentences)
    assert rouge.SPLITTER in ("nltk-punkt", "regex-fallback")


@pytest.mark.skipif(rouge.SPLITTER != "nltk-punkt", reason="nltk punkt data not installed")
def test_nltk_path_matches_run_summarization_postprocess():
    import nltk

    text = "Mr. Smith arrived at 5 p.m. today. He left early!"
    assert rouge.prepare_text(f"  {text} ") == "\n".join(nltk.sent_tokenize(text))


def test_scoring_a_thousand_pairs_is_fast():
    rng = random.Random(0)
    words = (
        "amanda baked cookies and will bring jerry some tomorrow running meeting "
        "friends party call later busy work weekend dinner cinema ticket"
    ).split()
    pairs = [(" ".join(rng.choices(words, k=30)) + ".", " ".join(rng.choices(words, k=30)) + ".") for _ in range(1000)]
    start = time.perf_counter()
    results = [rouge.score(p, r) for p, r in pairs]
    elapsed = time.perf_counter() - start
    assert results[0] == pytest.approx(expected(*pairs[0]), abs=1e-12)
    assert elapsed < 3.0, f"1,000 pairs took {elapsed:.2f}s"


PER_RECORD = [
    {"rouge1": 40.0, "rouge2": 10.0, "rougeL": 35.0, "rougeLsum": 36.0},
    {"rouge1": 55.0, "rouge2": 25.0, "rougeL": 50.0, "rougeLsum": 52.0},
    {"rouge1": 20.0, "rouge2": 0.0, "rougeL": 18.0, "rougeLsum": 18.0},
    {"rouge1": 70.0, "rouge2": 45.0, "rougeL": 65.0, "rougeLsum": 66.0},
    {"rouge1": 33.0, "rouge2": 12.0, "rougeL": 30.0, "rougeLsum": 31.0},
    {"rouge1": 61.0, "rouge2": 30.0, "rougeL": 58.0, "rougeLsum": 60.0},
]


def test_bootstrap_is_reproducible_and_seed_dependent():
    first = rouge.bootstrap_interval(PER_RECORD, n_resamples=500, seed=1)
    again = rouge.bootstrap_interval(PER_RECORD, n_resamples=500, seed=1)
    other = rouge.bootstrap_interval(PER_RECORD, n_resamples=500, seed=2)
    assert first == again
    assert first != other
    assert first["rouge1"]["mean"] == other["rouge1"]["mean"]


def test_bootstrap_interval_brackets_the_plain_mean():
    result = rouge.bootstrap_interval(PER_RECORD, n_resamples=1000, seed=0)
    assert set(result) == set(TYPES)
    for t in TYPES:
        plain = sum(r[t] for r in PER_RECORD) / len(PER_RECORD)
        assert result[t]["mean"] == pytest.approx(plain)
        assert result[t]["low"] <= result[t]["mean"] <= result[t]["high"]
        assert result[t]["low"] < result[t]["high"]
    narrow = rouge.bootstrap_interval(PER_RECORD, n_resamples=1000, seed=0, confidence=0.5)
    assert narrow["rouge1"]["high"] - narrow["rouge1"]["low"] < (result["rouge1"]["high"] - result["rouge1"]["low"])


def test_bootstrap_of_identical_records_is_a_point():
    same = [{"rouge1": 0.1, "rouge2": 0.2, "rougeL": 0.3, "rougeLsum": 0.7}] * 7
    result = rouge.bootstrap_interval(same, n_resamples=50)
    for t in TYPES:
        assert result[t]["low"] <= result[t]["mean"] <= result[t]["high"]
        assert result[t]["high"] - result[t]["low"] < 1e-12


def test_bootstrap_rejects_bad_arguments():
    with pytest.raises(ValueError, match="no per-record"):
        rouge.bootstrap_interval([])
    with pytest.raises(ValueError, match="confidence"):
        rouge.bootstrap_interval(PER_RECORD, confidence=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        rouge.bootstrap_interval(PER_RECORD, n_resamples=0)
    with pytest.raises(ValueError, match="record 1: ROUGE scores lack rougeLsum"):
        rouge.bootstrap_interval([PER_RECORD[0], {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}])


def test_running_mean_streams_the_mean():
    acc = rouge.RougeMean()
    assert acc.n == 0 and acc.mean() == {}
    for record in PER_RECORD:
        acc.add(record)
    assert acc.n == len(PER_RECORD)
    assert acc.mean()["rouge2"] == pytest.approx(sum(r["rouge2"] for r in PER_RECORD) / 6)
    plain = {t: v["mean"] for t, v in rouge.bootstrap_interval(PER_RECORD, n_resamples=1).items()}
    assert acc.mean() == pytest.approx(plain)  # the streamed mean is the mean the bootstrap report states
    with pytest.raises(ValueError, match="lack rouge2"):
        acc.add({"rouge1": 1.0, "rougeL": 1.0, "rougeLsum": 1.0})
    assert acc.n == len(PER_RECORD)  # a refused record counts for nothing


def test_running_mean_takes_score_output():
    acc = rouge.RougeMean()
    acc.add(rouge.score("Tom is running late.", "Tom runs late."))
    acc.add(rouge.score("", "Tom runs late."))
    assert acc.mean()["rouge1"] == pytest.approx(expected("Tom is running late.", "Tom runs late.")["rouge1"] / 2)
