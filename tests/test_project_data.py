"""The hand-written corpus in data/: parseable, well-formed SAMSum-style records."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
SPLITS = ("train", "validation", "test")
TURN = re.compile(r"^([^:\n]+): (\S.*)$")


def _load(split: str) -> list[dict]:
    """Records of one split; a malformed line fails with its file and line number."""
    records = []
    path = DATA / f"{split}.jsonl"
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            pytest.fail(f"{path.name}:{number}: {exc}")
    return records


def _speakers(dialogue: str) -> list[str]:
    """Speaker of every turn; fails on a line that is not `Name: text`."""
    speakers = []
    for line in dialogue.split("\n"):
        match = TURN.match(line)
        assert match, f"not a 'Name: text' turn: {line!r}"
        speakers.append(match.group(1))
    return speakers


def _sentences(summary: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", summary.strip()) if s]


ALL = [(split, r) for split in SPLITS for r in _load(split)]


def test_enough_records_in_every_split() -> None:
    counts = {split: len(_load(split)) for split in SPLITS}
    assert sum(counts.values()) >= 60
    assert counts["train"] >= 40 and counts["validation"] >= 8 and counts["test"] >= 8


def test_schema_and_unique_ids() -> None:
    ids = [r["id"] for _, r in ALL]
    assert len(ids) == len(set(ids))
    for split, r in ALL:
        assert set(r) == {"id", "dialogue", "summary"}, r
        assert re.fullmatch(rf"dsb-{split}-\d{{3}}", r["id"]), r["id"]
        assert isinstance(r["dialogue"], str) and r["dialogue"].strip()
        assert isinstance(r["summary"], str) and r["summary"].strip()


@pytest.mark.parametrize("split,record", ALL, ids=[r["id"] for _, r in ALL])
def test_dialogue_shape_and_summary(split: str, record: dict) -> None:
    speakers = _speakers(record["dialogue"])
    assert 3 <= len(speakers) <= 40
    assert 2 <= len(set(speakers)) <= 6
    assert 1 <= len(_sentences(record["summary"])) <= 3
    assert any(name in record["summary"] for name in set(speakers)), "summary names no speaker"


def test_corpus_looks_like_chat() -> None:
    """Variety the corpus promises: emoji, attachment tags, a spread of lengths and group sizes."""
    text = "\n".join(r["dialogue"] for _, r in ALL)
    for tag in ("<file_photo>", "<file_gif>", "<file_other>"):
        assert tag in text
    assert any(ord(ch) > 0x1F000 for ch in text)
    turns = [len(_speakers(r["dialogue"])) for _, r in ALL]
    groups = {len(set(_speakers(r["dialogue"]))) for _, r in ALL}
    assert max(turns) >= 30 and min(turns) <= 4
    assert {2, 3, 4, 5, 6} <= groups
    assert len({r["summary"] for _, r in ALL}) == len(ALL)


def test_files_are_utf8_without_ascii_escapes() -> None:
    for split in SPLITS:
        raw = (DATA / f"{split}.jsonl").read_text(encoding="utf-8")
        assert "\\u" not in raw, f"{split}.jsonl escapes non-ASCII characters"


def test_sample_txt_has_blank_line_separated_dialogues() -> None:
    raw = (DATA / "sample.txt").read_text(encoding="utf-8")
    blocks = raw.strip("\n").split("\n\n")
    assert 5 <= len(blocks) <= 10
    for block in blocks:
        speakers = _speakers(block)
        assert len(speakers) >= 3 and len(set(speakers)) >= 2
    assert "\n\n\n" not in raw
