"""The synthetic generator: seeded, well-formed, summaries grounded in the dialogue, realistic lengths."""

from __future__ import annotations

import inspect
import json
import os
import re
import statistics
import subprocess
import sys
import time
from functools import cache
from itertools import islice
from pathlib import Path

import pytest

from dialogsum_batch.errors import ConfigError
from dialogsum_batch.fixtures import synthetic
from dialogsum_batch.fixtures.synthetic import generate, write_jsonl

REPO = Path(__file__).resolve().parents[1]
TURN = re.compile(r"^([^:\n]+): (.+)$")
# Every place a record can name: activity venues, shops, workshops, stations and meeting points.
ALL_PLACES: tuple[str, ...] = tuple(
    dict.fromkeys(
        [place for activity in synthetic.ACTIVITIES for place in activity.places]
        + [*synthetic.SHOPS, *synthetic.WORKSHOPS, *synthetic.STATIONS, *synthetic.MEETING_POINTS]
    )
)


def _speakers(dialogue: str) -> list[str]:
    """Distinct speakers in order of first turn; fails the test on a malformed line."""
    names: list[str] = []
    for line in dialogue.split("\n"):
        match = TURN.match(line)
        assert match, f"not a 'Name: text' turn: {line!r}"
        if match.group(1) not in names:
            names.append(match.group(1))
    return names


@cache
def _pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    """One regex for a list of phrases, longest first, matched as whole words."""
    ordered = sorted(phrases, key=len, reverse=True)
    return re.compile(r"(?<!\w)(" + "|".join(map(re.escape, ordered)) + r")(?!\w)", re.IGNORECASE)


def _mentions(text: str, phrases: tuple[str, ...]) -> list[str]:
    """The phrases that occur in text as whole words, case-insensitively."""
    found = {m.lower() for m in _pattern(phrases).findall(text)}
    return [p for p in phrases if p.lower() in found]


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return list(generate(2000, seed=7))


def test_same_seed_same_records_and_prefix_stable() -> None:
    first = list(generate(50, seed=3))
    assert first == list(generate(50, seed=3))
    assert first[:20] == list(generate(20, seed=3))
    assert first != list(generate(50, seed=4))


def test_generate_streams_lazily() -> None:
    stream = generate(10**9, seed=1)
    assert inspect.isgenerator(stream)
    assert len(list(islice(stream, 3))) == 3


def test_negative_count_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="got -1"):
        generate(-1)
    assert list(generate(0)) == []


def test_schema_ids_and_speakers(records: list[dict]) -> None:
    assert all(set(r) == {"id", "dialogue", "summary"} for r in records)
    assert [r["id"] for r in records[:2]] == ["syn-000000", "syn-000001"]
    assert len({r["id"] for r in records}) == len(records)
    assert next(generate(1, id_prefix="bench"))["id"] == "bench-000000"
    for r in records:
        assert 2 <= len(_speakers(r["dialogue"])) <= 5
        assert r["summary"].strip() and r["summary"].endswith(".")


def test_summary_facts_come_from_the_dialogue(records: list[dict]) -> None:
    with_place = 0
    for r in records:
        dialogue, summary = r["dialogue"], r["summary"]
        speakers = _speakers(dialogue)
        assert _mentions(summary, tuple(speakers)), r
        for name in _mentions(summary, synthetic.NAMES):
            assert name in dialogue, (name, r)
        times = _mentions(summary, synthetic.TIMES)
        assert times, r
        for fact in times + _mentions(summary, synthetic.DAYS) + _mentions(summary, ALL_PLACES):
            assert _mentions(dialogue, (fact,)), (fact, r)
        with_place += bool(_mentions(summary, ALL_PLACES))
    assert with_place >= 0.8 * len(records)


def test_summary_needs_the_dialogue(records: list[dict]) -> None:
    """Facts vary across records and first proposals are sometimes overturned."""
    assert len({r["summary"] for r in records}) > 0.95 * len(records)
    overturned = [r for r in records if len(_mentions(r["dialogue"], synthetic.TIMES)) >= 2]
    assert len(overturned) > 0.15 * len(records)


def test_summary_keeps_the_final_time_not_the_first_proposal(records: list[dict]) -> None:
    """Counter-offers come later in a chat, so the agreed time is the last one mentioned."""
    for r in records:
        said = [m.lower() for m in _pattern(synthetic.TIMES).findall(r["dialogue"])]
        assert [t.lower() for t in _mentions(r["summary"], synthetic.TIMES)] == [said[-1]], r


def test_length_distribution(records: list[dict]) -> None:
    turns = [r["dialogue"].count("\n") + 1 for r in records]
    words = [len(r["dialogue"].split()) for r in records]
    assert 5 <= statistics.median(turns) <= 20
    assert min(turns) >= 3
    assert sum(w > 300 for w in words) >= 20
    assert sum(w > 300 for w in words) < 0.2 * len(records)
    assert max(words) <= 700


def test_style_noise_is_present(records: list[dict]) -> None:
    text = "\n".join(r["dialogue"] for r in records)
    for marker in ("<file_photo>", "<file_gif>", "<file_other>", "😂", " u ", "pls"):
        assert marker in text, marker


def test_fast_enough() -> None:
    """At least 5,000 records per CPU-second (about 15,000 measured); CPU time, so a busy box doesn't fail it."""
    start = time.process_time()
    count = sum(1 for _ in generate(5000, seed=11))
    rate = count / max(time.process_time() - start, 1e-6)
    assert rate >= 5000, f"{rate:.0f} records/s"


def test_write_jsonl_round_trips(tmp_path: Path) -> None:
    out = tmp_path / "syn.jsonl"
    assert write_jsonl(out, 25, seed=5) == 25
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == list(generate(25, seed=5))
    assert any(ord(ch) > 127 for ch in out.read_text(encoding="utf-8"))  # emoji kept, not \u-escaped


def test_module_cli_prints_jsonl() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "dialogsum_batch.fixtures.synthetic", "--n", "4", "--seed", "2"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert [json.loads(line) for line in proc.stdout.splitlines()] == list(generate(4, seed=2))
