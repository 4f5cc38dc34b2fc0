"""Hostile input lines: valid JSON Python chokes on, lone surrogates, endless lines, exotic blanks, gzip
on stdin. Each becomes one FILE:LINE error row, the good records around it still flow, and the output
stays strict UTF-8 with RFC 8259 JSON on every line.
"""

from __future__ import annotations

import gzip
import json

import pytest
from click.testing import CliRunner
from conftest import read_jsonl
from hypothesis import given
from hypothesis import strategies as st

from dialogsum_batch.cli import main
from dialogsum_batch.inference.records import BadRecord, Record, read_records


def good(i: int) -> bytes:
    return json.dumps({"id": f"g{i}", "dialogue": f"P{i}: hello number {i}\nQ: ok"}).encode() + b"\n"


def strict_json(line: str) -> dict:
    """RFC 8259: no NaN / Infinity, and the text must be encodable as UTF-8."""
    line.encode("utf-8")
    return json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in output"))


def skip_run(tmp_path, data: bytes, *extra: str):
    source = tmp_path / "in.jsonl"
    source.write_bytes(data)
    out, errors = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    result = CliRunner().invoke(
        main,
        [str(source), "-o", str(out), "--on-error", "skip", "--errors-out", str(errors), *extra],
        catch_exceptions=False,
    )
    written = out.read_bytes().decode("utf-8") if out.exists() else ""
    bad = errors.read_bytes().decode("utf-8") if errors.exists() else ""
    return (
        result,
        [strict_json(line) for line in written.splitlines()],
        [strict_json(line) for line in bad.splitlines()],
    )


HOSTILE = {
    "deep array": b'{"id": "a", "dialogue": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
    "deep object": b'{"x": ' * 50_000 + b"1" + b"}" * 50_000 + b"\n",
    "long integer": b'{"id": ' + b"9" * 5_000 + b', "dialogue": "A: hi"}\n',
    "NaN in a kept field": b'{"id": "n", "dialogue": "A: hi", "score": NaN}\n',
    "Infinity": b'{"id": "i", "dialogue": "A: hi", "score": -Infinity}\n',
    "surrogate in the id": b'{"id": "\\ud800", "dialogue": "A: hi"}\n',
    "surrogate in the dialogue": b'{"dialogue": "A: hi \\udfff there"}\n',
    "surrogate in the reference": b'{"dialogue": "A: hi", "summary": "\\ud83d"}\n',
    "surrogate in a kept field": b'{"dialogue": "A: hi", "meta": {"\\udc00": 1}}\n',
    "only U+3000": "\u3000\n".encode(),
    "only \\x1c": b"\x1c\n",
    "only \\x85": "\u0085\n".encode(),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_each_hostile_line_is_one_error_row_between_good_records(fake_backend, tmp_path, name):
    result, rows, errors = skip_run(tmp_path, good(0) + HOSTILE[name] + good(1), "--keep-fields", "*")
    assert result.exit_code == 3, result.stderr
    assert [row["id"] for row in rows] == ["g0", "g1"]
    assert [(e["line"], e["source"]) for e in errors] == [(2, str(tmp_path / "in.jsonl"))]
    assert "Traceback" not in result.stderr
    assert f"{tmp_path / 'in.jsonl'}:2: " in result.stderr


def test_reasons_name_the_problem(tmp_path):
    reasons = {}
    for name, line in HOSTILE.items():
        (tmp_path / "x.jsonl").write_bytes(line)
        (item,) = read_records([str(tmp_path / "x.jsonl")])
        assert isinstance(item, BadRecord), name
        reasons[name] = item.error.reason
    assert reasons["deep array"] == "JSON nested too deeply to read"
    assert "4,300 digits" in reasons["long integer"]
    assert reasons["NaN in a kept field"] == "NaN is not valid JSON (RFC 8259)"
    assert "field 'id' holds a lone surrogate" in reasons["surrogate in the id"]
    assert "field 'meta' holds a lone surrogate" in reasons["surrogate in a kept field"]
    assert reasons["only U+3000"].startswith("invalid JSON")


def test_an_endless_line_is_read_past_and_reported(fake_backend, tmp_path):
    result, rows, errors = skip_run(
        tmp_path, good(0) + b'{"x": "' + b"y" * 300_000 + b'"}\n' + good(1), "--max-line-bytes", "65536"
    )
    assert result.exit_code == 3
    assert [row["id"] for row in rows] == ["g0", "g1"]
    assert errors[0]["line"] == 2 and "over the 65,536-byte limit" in errors[0]["reason"]


def test_text_dialogue_of_exotic_blanks_is_an_error_not_a_gap(fake_backend):
    text = "A: hi\nB: hey\n\n\u3000\n\x1c\n\nC: bye\n"
    result = CliRunner().invoke(main, ["--format", "text", "--on-error", "skip", "-"], input=text)
    assert result.exit_code == 3
    assert [row["id"] for row in read_jsonl(result.stdout)] == ["<stdin>:1", "<stdin>:7"]
    assert "<stdin>:4: dialogue holds no visible text" in result.stderr


def test_gzip_on_stdin_is_gunzipped(fake_backend):
    data = gzip.compress(good(0) + good(1))
    result = CliRunner().invoke(main, ["-"], input=data)
    assert result.exit_code == 0, result.stderr
    assert [row["id"] for row in read_jsonl(result.stdout)] == ["g0", "g1"]


def test_gzip_content_under_another_name_is_read(fake_backend, tmp_path):
    (tmp_path / "chats.jsonl").write_bytes(gzip.compress(good(7)))
    result = CliRunner().invoke(main, [str(tmp_path / "chats.jsonl")])
    assert [row["id"] for row in read_jsonl(result.stdout)] == ["g7"]


# ---------------------------------------------------------------------------- properties

LINE = st.one_of(
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")),
    st.text(max_size=40).map(lambda t: json.dumps({"dialogue": t}, ensure_ascii=False).encode("utf-8", "replace")),
    st.sampled_from(list(HOSTILE.values())).map(lambda b: b.rstrip(b"\n")),
    st.integers(0, 9).map(lambda i: good(i).rstrip(b"\n")),
)


@pytest.mark.property
@given(lines=st.lists(LINE, max_size=12))
def test_random_lines_are_each_accounted_for_once(tmp_path, lines):
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"\n".join(lines))
    items = list(read_records([str(path)], fmt="jsonl", max_line_bytes=4096))
    if path.read_bytes().startswith(b"\x1f\x8b"):  # gzip's magic: a corrupt .gz is one file-level error
        assert isinstance(items[-1], BadRecord) and "cannot read" in items[-1].error.reason
        return
    numbered = [item.line if isinstance(item, Record) else item.error.line for item in items]
    lines = [lines[0].removeprefix(b"\xef\xbb\xbf"), *lines[1:]] if lines else []  # a BOM is no content
    expected = [n for n, line in enumerate(lines, start=1) if line.strip(b" \t\r\n")]
    assert numbered == expected
    assert [item.index for item in items] == list(range(len(items)))


@pytest.mark.property
@given(lines=st.lists(LINE, min_size=1, max_size=8))
def test_skip_mode_exits_0_or_3_and_loses_no_line(fake_backend, tmp_path, lines):
    kept = [line for line in lines if line.removeprefix(b"\xef\xbb\xbf").strip(b" \t\r\n")]  # blanks: no records
    data = b"".join(line + b"\n" for line in kept)
    for stale in ("out.jsonl", "errors.jsonl"):
        (tmp_path / stale).unlink(missing_ok=True)
    result, rows, errors = skip_run(tmp_path, data, "--format", "jsonl")
    assert result.exit_code in (0, 3), result.stderr
    assert len(rows) + len(errors) == len(kept)
