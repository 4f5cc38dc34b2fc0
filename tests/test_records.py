"""Unit tests for inference/records.py: readers, bad records, ids, references, field names, gzip, globs."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialogsum_batch.config import FieldNames
from dialogsum_batch.errors import InputError
from dialogsum_batch.inference.records import (
    RAW_LIMIT,
    BadRecord,
    Record,
    decoded_lines,
    detect_format,
    expand,
    normalise,
    read_files,
    read_records,
    sniffed_lines,
)

# ---------------------------------------------------------------------------- helpers


def write(path: Path, data: bytes | str) -> str:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return str(path)


def read(path: str, **options) -> list[Record | BadRecord]:
    return list(read_records([path], **options))


def only(items: list[Record | BadRecord]) -> Record | BadRecord:
    assert len(items) == 1, items
    return items[0]


def bad_one(path: str, **options) -> InputError:
    item = only(read(path, **options))
    assert isinstance(item, BadRecord), item
    return item.error


@pytest.fixture
def stdin(monkeypatch):
    """Put bytes on a stdin stand-in without a file descriptor, as CliRunner does."""

    def feed(data: bytes) -> None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))

    return feed


# ---------------------------------------------------------------------------- JSONL records


def test_jsonl_record_fields_ids_and_extra(tmp_path):
    path = write(
        tmp_path / "chats.jsonl",
        '{"id": "a1", "dialogue": "A: hi\\nB: yo", "summary": "greeting", "topic": "x", "n": 3}\n',
    )
    record = only(read(path))
    assert record == Record(0, "a1", "A: hi\nB: yo", ("greeting",), path, 1, {"topic": "x", "n": 3})


@pytest.mark.parametrize(
    "value, expected",
    [
        ('"abc"', "abc"),
        ("17", "17"),
        ("0", "0"),
        ('""', None),  # empty: FILE:LINE
        ("null", None),
    ],
)
def test_jsonl_id_from_field_else_file_and_line(tmp_path, value, expected):
    path = write(tmp_path / "chats.jsonl", '\n{"dialogue": "A: hi", "id": ' + value + "}\n")
    record = only(read(path))
    assert record.id == (expected if expected is not None else f"{path}:2")


@pytest.mark.parametrize(
    "value, kind", [("true", "boolean"), ("1.5", "a non-integer number"), ("[1]", "array"), ('{"x": 1}', "object")]
)
def test_jsonl_id_of_another_type_is_a_bad_record(tmp_path, value, kind):
    path = write(tmp_path / "chats.jsonl", '{"dialogue": "A: hi", "id": ' + value + "}\n")
    error = bad_one(path)
    assert (error.source, error.line) == (path, 1)
    assert error.reason == f"field 'id' must be a string or an integer, got {kind}"


@pytest.mark.parametrize(
    "value, expected",
    [
        ('"one ref"', ("one ref",)),
        ('["r1", "r2"]', ("r1", "r2")),
        ('["r1", "  ", ""]', ("r1",)),  # blank references dropped
        ('"   "', ()),
        ("[]", ()),
        ("null", ()),
    ],
)
def test_jsonl_references_string_or_list(tmp_path, value, expected):
    path = write(tmp_path / "chats.jsonl", '{"dialogue": "A: hi", "summary": ' + value + "}\n")
    assert only(read(path)).references == expected


@pytest.mark.parametrize("value, kind", [("3", "number"), ('["ok", 3]', "array"), ('{"a": "b"}', "object")])
def test_jsonl_references_of_another_type_are_a_bad_record(tmp_path, value, kind):
    path = write(tmp_path / "chats.jsonl", '{"dialogue": "A: hi", "summary": ' + value + "}\n")
    error = bad_one(path)
    assert error.reason == f"field 'summary' must be a string or a list of strings, got {kind}"


def test_jsonl_records_without_a_references_field_have_none(tmp_path):
    path = write(tmp_path / "chats.jsonl", '{"dialogue": "A: hi"}\n')
    assert only(read(path)).references == ()


def test_field_names_pick_custom_fields(tmp_path):
    path = write(
        tmp_path / "chats.jsonl", '{"key": 9, "chat": "A: hi", "gold": ["g"], "dialogue": "ignored", "id": "ignored"}\n'
    )
    record = only(read(path, names=FieldNames(text="chat", id="key", reference="gold")))
    assert (record.id, record.dialogue, record.references) == ("9", "A: hi", ("g",))
    assert record.extra == {"dialogue": "ignored", "id": "ignored"}


def test_field_names_name_the_custom_field_in_errors(tmp_path):
    path = write(tmp_path / "chats.jsonl", '{"dialogue": "A: hi"}\n')
    error = bad_one(path, names=FieldNames(text="chat"))
    assert str(error) == f"{path}:1: field 'chat' is missing (--text-field); fields found: dialogue"


# ---------------------------------------------------------------------------- bad records


@pytest.mark.parametrize(
    "line, reason",
    [
        ('{"dialogue": ', "invalid JSON (Expecting value)"),
        ("{'dialogue': 'x'}", "invalid JSON (Expecting property name enclosed in double quotes)"),
        ('{"dialogue": "A: hi"} trailing', "invalid JSON (Extra data)"),
        ('["A: hi"]', "expected a JSON object, got array"),
        ('"A: hi"', "expected a JSON object, got string"),
        ("42", "expected a JSON object, got number"),
        ("null", "expected a JSON object, got null"),
        ('{"dialogue": "A: hi", "score": NaN}', "NaN is not valid JSON (RFC 8259)"),
        ('{"dialogue": "A: hi", "score": -Infinity}', "-Infinity is not valid JSON (RFC 8259)"),
        ('{"summary": "s"}', "field 'dialogue' is missing (--text-field); fields found: summary"),
        ('{"dialogue": ""}', "field 'dialogue' is empty"),
        ('{"dialogue": " \\n\\t "}', "field 'dialogue' is empty"),
        ('{"dialogue": 5}', "field 'dialogue' must be a string, got number"),
        ('{"dialogue": null}', "field 'dialogue' must be a string, got null"),
        ('{"dialogue": ["A: hi"]}', "field 'dialogue' must be a string, got array"),
        ('{"dialogue": true}', "field 'dialogue' must be a string, got boolean"),
        ('{"dialogue": "A: \\ud800"}', "field 'dialogue' holds a lone surrogate (\\ud800-\\udfff), which is not text"),
    ],
)
def test_bad_jsonl_line_is_a_bad_record_naming_file_line_and_reason(tmp_path, line, reason):
    path = write(tmp_path / "chats.jsonl", '{"dialogue": "A: first"}\n' + line + '\n{"dialogue": "A: third"}\n')
    items = read(path)
    assert [type(item) for item in items] == [Record, BadRecord, Record], "a bad line holds its place"
    error = items[1].error
    assert str(error) == f"{path}:2: {reason}"
    assert (items[1].index, error.source, error.line) == (1, path, 2)
    assert [items[0].line, items[2].line] == [1, 3]


def test_bad_record_keeps_the_raw_line_shortened(tmp_path):
    line = '{"dialogue": ' + "x" * 2000
    error = bad_one(write(tmp_path / "chats.jsonl", line + "\n"))
    assert error.raw == line[:RAW_LIMIT] + "..."


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b'{"dialogue": "caf\xe9"}', "invalid UTF-8 at byte 17"),
        (b'{"dialogue": "\xff\xfe"}', "invalid UTF-8 at byte 14"),
        (b'{"dialogue": "A\x00B"}', "binary data (NUL bytes)"),
    ],
)
def test_undecodable_line_is_a_bad_record(tmp_path, raw, reason):
    path = write(tmp_path / "chats.jsonl", b'{"dialogue": "A: ok"}\n' + raw + b"\n")
    items = read(path)
    assert isinstance(items[0], Record)
    assert str(items[1].error) == f"{path}:2: {reason}"


def test_blank_jsonl_lines_are_skipped_but_counted(tmp_path):
    path = write(tmp_path / "chats.jsonl", '\n  \n\t\r\n{"dialogue": "A: hi"}\n\n{"dialogue": "B: yo"}\n\n')
    items = read(path)
    assert [(item.index, item.line, item.id) for item in items] == [(0, 4, f"{path}:4"), (1, 6, f"{path}:6")]


def test_jsonl_line_of_other_blanks_is_a_bad_record(tmp_path):
    path = write(tmp_path / "chats.jsonl", '{"dialogue": "A: hi"}\n\u3000\n')
    error = read(path)[1].error
    assert (error.line, error.reason) == (2, "invalid JSON (Expecting value)")


def test_bom_and_crlf_are_handled(tmp_path):
    path = write(tmp_path / "chats.jsonl", b'\xef\xbb\xbf{"dialogue": "A: hi\\r\\nB: yo"}\r\n{"dialogue": "C"}\r\n')
    assert [item.dialogue for item in read(path)] == ["A: hi\nB: yo", "C"]


# ---------------------------------------------------------------------------- over-long lines


def test_over_long_line_is_a_bad_record_and_reading_goes_on(tmp_path):
    long = '{"dialogue": "' + "x" * 100 + '"}'
    path = write(tmp_path / "chats.jsonl", '{"dialogue": "A: 1"}\n' + long + '\n{"dialogue": "A: 3"}\n')
    items = read(path, max_line_bytes=50)
    assert [item.dialogue for item in (items[0], items[2])] == ["A: 1", "A: 3"]
    assert str(items[1].error) == f"{path}:2: line is over the 50-byte limit (--max-line-bytes)"
    assert items[2].line == 3


def test_decoded_lines_name_the_over_long_line():
    lines = list(decoded_lines(io.BytesIO(b"a\n" + b"b" * 2000 + b"\nc\n"), "in.jsonl", limit=1000))
    assert lines[0] == (1, "a") and lines[2] == (3, "c")
    number, error = lines[1]
    assert number == 2 and str(error) == "in.jsonl:2: line is over the 1,000-byte limit (--max-line-bytes)"


# ---------------------------------------------------------------------------- plain text


def test_text_dialogues_split_on_blank_lines_with_file_line_ids(tmp_path):
    path = write(tmp_path / "chats.txt", "A: hi\n  B: yo  \n\n\n\nC: one\r\nD: two\r\n\n   \nE: last")
    items = read(path)
    assert [(item.id, item.dialogue) for item in items] == [
        (f"{path}:1", "A: hi\nB: yo"),
        (f"{path}:6", "C: one\nD: two"),
        (f"{path}:10", "E: last"),
    ]
    assert [item.index for item in items] == [0, 1, 2]
    assert all(item.references == () and item.extra == {} for item in items)


def test_text_dialogue_of_other_blanks_is_a_bad_record(tmp_path):
    path = write(tmp_path / "chats.txt", "A: hi\n\n\u3000\n\x1c\n\nB: yo\n")
    items = read(path)
    assert [type(item) for item in items] == [Record, BadRecord, Record]
    assert str(items[1].error) == f"{path}:3: dialogue holds no visible text"


def test_text_bad_utf8_line_is_a_bad_record(tmp_path):
    path = write(tmp_path / "chats.txt", b"A: hi\n\nB: \xff\n\nC: ok\n")
    items = read(path)
    assert [type(item) for item in items] == [Record, BadRecord, Record]
    assert (items[1].error.line, items[1].error.reason) == (3, "invalid UTF-8 at byte 3")


# ---------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    "path, first_line, expected",
    [
        ("a.jsonl", "A: hi", "jsonl"),
        ("a.json", None, "json"),  # nothing to sniff: the name decides (an empty file is no records either way)
        ("a.ndjson", "x", "jsonl"),
        ("a.jsonl.gz", "x", "jsonl"),
        ("a.txt", '{"dialogue": "x"}', "jsonl"),  # content over name: JSON lines are never one text dialogue
        ("a.txt.gz", '{"dialogue": "x"}', "jsonl"),
        ("data", '{"dialogue": "x"}', "jsonl"),
        ("data", '   {"dialogue": "x"}', "jsonl"),
        ("-", '{"dialogue": "x"}', "jsonl"),
        ("data", "A: hi", "text"),
        ("data.gz", "A: {", "text"),
        ("data", None, "text"),
    ],
)
def test_detect_format_by_content_else_name(path, first_line, expected):
    assert detect_format(path, first_line) == expected


def test_sniffing_skips_blank_and_bad_lines_and_loses_none(tmp_path):
    data = b'\n\n\xff\n{"dialogue": "A: hi"}\n{"dialogue": "B: yo"}\n'
    fmt, lines = sniffed_lines("data", io.BytesIO(data), "auto")
    lines = list(lines)
    assert fmt == "jsonl"
    assert [number for number, _ in lines] == [1, 2, 3, 4, 5]
    assert isinstance(lines[2][1], InputError) and lines[3][1] == '{"dialogue": "A: hi"}'


def test_bad_lines_before_the_first_text_come_out_ahead_and_the_format_is_still_found(tmp_path):
    path = write(tmp_path / "data", b'\n\xff\n{"dialogue": "A: hi"}\n{"dialogue": "B: yo"}\n')
    items = read(path)
    assert isinstance(items[0], BadRecord) and items[0].error.line == 2
    assert [item.dialogue for item in items[1:]] == ["A: hi", "B: yo"]  # read as JSONL


@pytest.mark.parametrize("name", ["chats", "chats.data"])
def test_unnamed_format_is_sniffed_from_content(tmp_path, name):
    jsonl = write(tmp_path / name, '\n{"dialogue": "A: hi"}\n')
    assert only(read(jsonl)).dialogue == "A: hi"
    text = write(tmp_path / (name + "2"), '\nA: hi\nB: {"x": 1}\n')
    assert only(read(text)).dialogue == 'A: hi\nB: {"x": 1}'


def test_format_option_overrides_the_name(tmp_path):
    path = write(tmp_path / "chats.jsonl", '{"dialogue": "A: hi"}\n{"dialogue": "B: yo"}\n')
    record = only(read(path, fmt="text"))
    assert record.dialogue == '{"dialogue": "A: hi"}\n{"dialogue": "B: yo"}'
    assert record.id == f"{path}:1"


def test_format_option_jsonl_on_a_text_file_gives_bad_records(tmp_path):
    path = write(tmp_path / "chats.txt", "A: hi\nB: yo\n")
    items = read(path, fmt="jsonl")
    assert [str(item.error) for item in items] == [
        f"{path}:1: invalid JSON (Expecting value)",
        f"{path}:2: invalid JSON (Expecting value)",
    ]


# ---------------------------------------------------------------------------- stdin, gzip, many files


def test_stdin_records_are_named_by_line(stdin):
    stdin(b'{"dialogue": "A: hi"}\n\n{"dialogue": "B: yo", "id": "named"}\n{"dialogue": "C"}\n')
    items = read("-")
    assert [(item.id, item.source, item.line) for item in items] == [
        ("<stdin>:1", "<stdin>", 1),  # a bare index ("0", "2") could be a real id of another record
        ("named", "<stdin>", 3),
        ("<stdin>:4", "<stdin>", 4),
    ]


def test_stdin_bad_record_names_stdin(stdin):
    stdin(b"A: plain\n\nB: text\n")
    assert [item.dialogue for item in read("-")] == ["A: plain", "B: text"]
    stdin(b'{"dialogue": 1}\n')
    assert str(bad_one("-")) == "<stdin>:1: field 'dialogue' must be a string, got number"


def test_gzip_stdin_is_read(stdin):
    stdin(gzip.compress(b'{"dialogue": "A: zipped"}\n'))
    assert only(read("-")).dialogue == "A: zipped"


@pytest.mark.parametrize("name", ["chats.jsonl.gz", "chats.jsonl", "chats"])
def test_gzip_file_is_read_by_content_whatever_its_name(tmp_path, name):
    path = write(tmp_path / name, gzip.compress(b'{"dialogue": "A: zipped", "id": "z"}\n'))
    record = only(read(path))
    assert (record.id, record.dialogue) == ("z", "A: zipped")


def test_gzip_text_file_is_read_as_text(tmp_path):
    path = write(tmp_path / "chats.txt.gz", gzip.compress(b"A: hi\nB: yo\n\nC: bye\n"))
    assert [item.dialogue for item in read(path)] == ["A: hi\nB: yo", "C: bye"]


def test_cut_gzip_keeps_records_before_the_cut_then_one_bad_record(tmp_path):
    rows = "".join(json.dumps({"dialogue": f"A: number {i} " + "pad " * 50}) + "\n" for i in range(200))
    packed = gzip.compress(rows.encode())
    path = write(tmp_path / "chats.jsonl.gz", packed[: len(packed) // 2])
    items = read(path)
    good, last = items[:-1], items[-1]
    assert good and all(isinstance(item, Record) for item in good)
    assert [item.line for item in good] == list(range(1, len(good) + 1))
    assert isinstance(last, BadRecord) and last.index == len(good)
    assert last.error.line is None and last.error.source == path
    assert last.error.reason.startswith(f"cannot read past line {len(good)} (")


def test_missing_and_unreadable_files_are_bad_records_and_indices_run_across_files(tmp_path):
    first = write(tmp_path / "a.jsonl", '{"dialogue": "A: 1"}\n{"dialogue": "A: 2"}\n')
    missing = str(tmp_path / "missing.jsonl")
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    last = write(tmp_path / "b.txt", "B: 3\n")
    items = list(read_records([first, missing, str(folder), last]))
    assert [item.index for item in items] == [0, 1, 2, 3, 4]
    assert str(items[2].error) == f"{missing}: cannot open (No such file or directory)"
    assert items[2].error.line is None
    assert str(items[3].error).startswith(f"{folder}: a folder, and no format reads it (formats tried: ")
    assert (items[4].dialogue, items[4].id) == ("B: 3", f"{last}:1")


def test_read_files_does_not_expand_globs_nor_read_stdin(tmp_path):
    write(tmp_path / "a.jsonl", '{"dialogue": "A: 1"}\n')
    pattern = str(tmp_path / "*.jsonl")
    assert list(read_files([])) == []
    assert str(only(list(read_files([pattern]))).error).startswith(f"{pattern}: cannot open")


# ---------------------------------------------------------------------------- expand, normalise


def test_expand_globs_sorted_and_keeps_what_matches_nothing(tmp_path):
    for name in ["b.jsonl", "a.jsonl", "c.txt"]:
        write(tmp_path / name, "")
    nothing = str(tmp_path / "*.csv")
    assert expand([str(tmp_path / "*.jsonl"), nothing, "plain.jsonl"]) == [
        str(tmp_path / "a.jsonl"),
        str(tmp_path / "b.jsonl"),
        nothing,
        "plain.jsonl",
    ]


def test_expand_keeps_a_file_whose_name_looks_like_a_glob(tmp_path):
    literal = write(tmp_path / "chats[1].jsonl", "")
    write(tmp_path / "chats1.jsonl", "")
    assert expand([literal]) == [literal]


@pytest.mark.parametrize("paths, expected", [([], ["-"]), (["-"], ["-"]), (["x", "-"], ["x", "-"])])
def test_expand_defaults_to_stdin(paths, expected):
    assert expand(paths) == expected


def test_read_records_expands_globs_in_order(tmp_path):
    write(tmp_path / "2.jsonl", '{"dialogue": "second"}\n')
    write(tmp_path / "1.jsonl", '{"dialogue": "first"}\n')
    assert [item.dialogue for item in read_records([str(tmp_path / "*.jsonl")])] == ["first", "second"]


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("A: hi\r\nB: yo", "A: hi\nB: yo"),
        ("A: hi\rB: yo", "A: hi\nB: yo"),
        ("\r\n\r\n  A: hi\n\n", "A: hi"),
        ("A:  two  spaces kept", "A:  two  spaces kept"),
        ("\u3000A\u3000", "A"),
        ("", ""),
    ],
)
def test_normalise_line_ends_and_outer_whitespace(raw, expected):
    assert normalise(raw) == expected


# ---------------------------------------------------------------------------- property


@pytest.mark.property
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",)), max_size=40), min_size=1, max_size=8))
def test_any_dialogue_text_round_trips_or_is_named_empty(tmp_path, dialogues):
    path = tmp_path / "chats.jsonl"
    rows = [json.dumps({"dialogue": text}, ensure_ascii=False) for text in dialogues]
    write(path, "".join(row + "\n" for row in rows))
    items = read(str(path))
    assert len(items) == len(dialogues)
    for number, (text, item) in enumerate(zip(dialogues, items), start=1):
        if text.strip():
            assert isinstance(item, Record) and item.dialogue == normalise(text) and item.line == number
        else:
            assert str(item.error) == f"{path}:{number}: field 'dialogue' is empty"
