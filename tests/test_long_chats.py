"""Chats longer than the model: ``--long chunk`` summarizes them in pieces divided at turn boundaries, then the
joined piece summaries; ``--long truncate`` (the default) truncates them as before."""

from __future__ import annotations

import json
import tracemalloc

import pytest
from click.testing import CliRunner
from conftest import FakeBackend, read_jsonl
from hypothesis import given
from hypothesis import strategies as st

from dialogsum_batch.backends import Encoded, Generated
from dialogsum_batch.cli import main
from dialogsum_batch.config import BatchSettings, LongSettings
from dialogsum_batch.inference.chunking import dialogue_pieces, fitting_parts, turns, units
from dialogsum_batch.inference.engine import Engine
from dialogsum_batch.inference.records import Record


def words(texts):
    """Token counts as a whitespace tokenizer with an end-of-sequence token would give them."""
    return [len(text.split()) + 1 for text in texts]


def chat(turn_count: int, words_per_turn: int = 9) -> str:
    return "\n".join(
        f"P{i % 3}: " + " ".join(f"w{i}x{j}" for j in range(words_per_turn - 1)) for i in range(turn_count)
    )


# ---------------------------------------------------------------------------- pieces


@pytest.mark.parametrize("overlap", [0, 1, 3])
def test_pieces_fit_keep_dialogue_order_and_cover_every_turn(overlap):
    dialogue = chat(60)
    pieces = dialogue_pieces(dialogue, words, budget=64, overlap=overlap)
    assert len(pieces) > 1 and all(n <= 64 for n in words(pieces))
    seen = [line for piece in pieces for line in piece.split("\n")]
    deduplicated = [line for i, line in enumerate(seen) if line not in seen[:i]]  # the overlap repeats turns
    assert deduplicated == turns(dialogue)  # every turn, once, in dialogue order
    if overlap:
        for before, after in zip(pieces, pieces[1:]):
            assert after.split("\n")[0] in before.split("\n")  # each piece opens with the last turns of the one before


def test_a_turn_longer_than_the_limit_is_divided_at_sentences_then_words_then_characters():
    sentences = " ".join(f"Sentence {i} has five words." for i in range(40))  # 200 words in one turn
    blob = "x" * 500  # one "word" longer than any budget: divided into runs of characters
    parts = fitting_parts(sentences, words, budget=30)
    assert all(p.tokens <= 30 for p in parts) and all(p.text.endswith(".") for p in parts)
    assert " ".join(p.text for p in parts) == sentences
    runs = fitting_parts(blob, lambda texts: [len(t) for t in texts], budget=40)
    assert "".join(p.text for p in runs) == blob and all(p.tokens <= 40 for p in runs)
    found = units(f"A: hi\nB: {sentences}\nC: bye", words, budget=30)
    assert [u.glue for u in found][:3] == ["\n", "\n", " "]  # a divided turn's parts go on with their turn


@pytest.mark.property
@given(st.lists(st.integers(1, 80), min_size=1, max_size=40), st.integers(0, 3), st.integers(20, 120))
def test_pieces_of_any_chat_fit_and_lose_no_turn(lengths, overlap, budget):
    dialogue = "\n".join(f"T{i}: " + " ".join(["w"] * (n - 1)) if n > 1 else f"T{i}:" for i, n in enumerate(lengths))
    pieces = dialogue_pieces(dialogue, words, budget, overlap)
    assert all(n <= budget for n in words(pieces))
    labels = [word for piece in pieces for word in piece.split() if word.startswith("T")]
    assert sorted(set(labels), key=lambda label: int(label[1:-1])) == [f"T{i}:" for i in range(len(lengths))]


# ---------------------------------------------------------------------------- through the engine


def summarize(backend, texts, long=LongSettings(mode="chunk")):
    records = [Record(i, f"r{i}", text) for i, text in enumerate(texts)]
    return list(Engine(backend, BatchSettings(batch_tokens=512), long=long).run(records))


def test_a_long_record_is_one_outcome_in_its_place_with_its_chunk_count():
    backend = FakeBackend(max_source_length=64)
    outcomes = summarize(backend, ["A: short one", chat(50), "B: short two"])
    assert [o.position for o in outcomes] == [0, 1, 2]
    short, long, other = outcomes
    assert (short.summary, short.chunks, other.summary) == ("A: short one", 0, "B: short two")
    assert long.chunks > 1 and not long.truncated and long.error is None
    assert long.summary.startswith("P0: w0x0")  # the fake summarizes a piece as its first turn
    assert long.tokens >= 3 * long.chunks  # every piece's summary tokens count


def test_joined_summaries_longer_than_the_target_are_summarized_again():
    backend = FakeBackend(max_source_length=64)
    (many,) = summarize(backend, [chat(200)], LongSettings(mode="chunk", target=20))
    (once,) = summarize(FakeBackend(max_source_length=64), [chat(200)], LongSettings(mode="chunk", target=10_000))
    assert once.summary.count("\n") + 1 == once.chunks  # one summary line per piece, joined
    assert many.summary.count("\n") < once.summary.count("\n")  # reduced: fewer lines than pieces
    assert many.chunks == once.chunks


def test_truncate_is_unchanged_and_chunk_leaves_short_records_alone():
    texts = ["A: short", chat(50), "B: also short"]
    truncated = summarize(FakeBackend(max_source_length=64), texts, LongSettings())
    assert [(o.summary, o.truncated, o.chunks) for o in truncated] == [
        ("A: short", False, 0),
        ("P0: " + " ".join(f"w0x{j}" for j in range(8)), True, 0),
        ("B: also short", False, 0),
    ]
    chunked = summarize(FakeBackend(max_source_length=64), texts)
    assert [o.summary for o in chunked][::2] == [o.summary for o in truncated][::2]


class Lean:
    """A whitespace 'model' that keeps nothing between calls: what the engine itself holds is what is measured."""

    name, device, max_source_length = "lean", "cpu", 1024

    def encode(self, texts):
        return [Encoded([1] * min(len(t.split()) + 1, 1024), len(t.split()) + 1 > 1024) for t in texts]

    def generate(self, batch):
        return [Generated("a short summary", 3) for _ in batch]

    def describe(self):
        return {}


def peak_bytes(dialogue: str) -> int:
    tracemalloc.start()
    try:
        (outcome,) = summarize(Lean(), [dialogue])
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        assert outcome.chunks > 1


def test_a_100000_token_chat_runs_in_memory_proportional_to_its_text():
    small, large = chat(1_000, 10), chat(10_000, 10)  # 10,000 and 100,000 tokens
    ratio = peak_bytes(large) / peak_bytes(small)
    assert ratio < 15, ratio  # ten times the text, about ten times the memory: nothing grows faster
    assert peak_bytes(large) < 40 * len(large.encode())


# ---------------------------------------------------------------------------- through the command


def test_the_command_writes_chunks_and_resumes_a_chunked_record_as_one(fake_backend, tmp_path):
    fake_backend.max_source_length = 64
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(
            json.dumps({"id": f"c{i}", "dialogue": text, "summary": "P0 said things"}) + "\n"
            for i, text in enumerate(["A: hi", chat(40), "B: bye"])
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    first = CliRunner().invoke(main, ["-m", "x", str(source), "-o", str(out), "--long", "chunk", "-q"])
    assert first.exit_code == 0, first.output
    rows = read_jsonl(out.read_text())
    assert [r["id"] for r in rows] == ["c0", "c1", "c2"] and "chunks" in rows[1] and "rouge" in rows[1]
    assert "truncated" not in rows[1] and "chunks" not in rows[0]
    again = CliRunner().invoke(main, ["-m", "x", str(source), "-o", str(out), "--long", "chunk", "--resume"])
    assert again.exit_code == 0 and "3 resumed" in again.stderr
    assert read_jsonl(out.read_text()) == rows


def test_truncate_stays_the_default(fake_backend):
    fake_backend.max_source_length = 64
    result = CliRunner().invoke(main, ["-m", "x", "-q"], input=json.dumps({"id": "l", "dialogue": chat(40)}) + "\n")
    (row,) = read_jsonl(result.stdout)
    assert row["truncated"] is True and "chunks" not in row


def test_the_tiny_model_summarizes_a_long_chat_in_pieces(tiny_model_dir):
    """The real tokenizer and model: pieces divided by their own token counts, every one within the limit."""
    dialogue = chat(30, 12)
    args = [
        "-m",
        str(tiny_model_dir),
        "--threads",
        "1",
        "--num-beams",
        "1",
        "--max-new-tokens",
        "4",
        "--max-source-length",
        "48",
        "-q",
    ]
    stdin = json.dumps({"id": "long", "dialogue": dialogue}) + "\n"
    chunked = CliRunner().invoke(main, [*args, "--long", "chunk"], input=stdin)
    truncated = CliRunner().invoke(main, args, input=stdin)
    assert chunked.exit_code == 0 and truncated.exit_code == 0, chunked.output + truncated.output
    (piecewise,), (truncated,) = read_jsonl(chunked.stdout), read_jsonl(truncated.stdout)
    assert piecewise["chunks"] >= 30 * 13 // 48 and "truncated" not in piecewise
    assert truncated["truncated"] is True and "chunks" not in truncated
