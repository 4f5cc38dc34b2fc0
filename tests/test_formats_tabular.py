"""Input formats, part one: the registry (built-ins and entry points), --format in --help, tables (CSV, TSV),
JSON arrays and {"data": [...]} documents, and ``--format auto`` choosing by content and saying so."""

from __future__ import annotations

import gzip
import json
import re
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import read_jsonl

from dialogsum_batch import formats
from dialogsum_batch.cli import main
from dialogsum_batch.config import FieldNames
from dialogsum_batch.formats import Format, Parsed
from dialogsum_batch.inference.records import BadRecord, Record, read_records

SAMSUM = [  # SAMSum's test.json: a list of {"id", "summary", "dialogue"} with \r\n between turns
    {
        "id": "13862856",
        "summary": "Hannah needs Betty's number but Amanda doesn't have it.",
        "dialogue": "Hannah: Hey, do you have Betty's number?\r\nAmanda: Lemme check\r\nAmanda: Sorry, can't find it.",
    },
    {"id": "13729565", "summary": "Eric and Rob are going to a stand-up.", "dialogue": "Eric: MACHINE!\nRob: LOL"},
]


def run(args, stdin=None):
    return CliRunner().invoke(main, args, input=stdin, catch_exceptions=False)


def write(path: Path, data: str | bytes) -> str:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return str(path)


def read(path: str, **options) -> list[Record | BadRecord]:
    return list(read_records([path], **options))


def errors(items) -> list[str]:
    return [str(item.error) for item in items if isinstance(item, BadRecord)]


# ---------------------------------------------------------------------------- registry


def test_help_lists_every_format_and_the_gap():
    result = run(["summarize", "--help"])
    for name in ("auto", "jsonl", "text", "csv", "tsv", "json"):
        assert name in result.stdout
    assert "--gap MINUTES" in result.stdout


def test_setup_declares_every_builtin_as_an_entry_point_to_the_same_object():
    setup = (Path(__file__).resolve().parent.parent / "setup.py").read_text(encoding="utf-8")
    declared = dict(re.findall(r'"(\w+) = (dialogsum_batch\.formats\.[\w.]+:\w+)"', setup))
    assert sorted(declared) == sorted(formats.BUILTIN)
    for name, target in declared.items():
        assert EntryPoint(name, target, formats.GROUP).load() is formats.BUILTIN[name]


def upper_lines(lines, context):
    for number, text in lines:
        if isinstance(text, str) and text.strip():
            yield Parsed(number, text=f"Bot: {text.upper()}", id=f"shout-{number}")


SHOUT = Format("shout", "one dialogue per line, shouted", upper_lines, suffixes=(".shout",))


def test_a_plugin_format_from_an_entry_point_reads_files_and_is_offered(monkeypatch, fake_backend, tmp_path):
    entry = EntryPoint("shout", f"{__name__}:SHOUT", formats.GROUP)
    monkeypatch.setattr(formats, "entry_points", lambda group: [entry] if group == formats.GROUP else [])
    assert "shout" in formats.format_names() and formats.registry()["shout"] is SHOUT
    path = write(tmp_path / "a.shout", "hi there\n")
    assert [(r.id, r.dialogue) for r in read(path)] == [("shout-1", "Bot: HI THERE")]


def test_a_plugin_cannot_replace_a_builtin(monkeypatch):
    entry = EntryPoint("csv", f"{__name__}:SHOUT", formats.GROUP)
    monkeypatch.setattr(formats, "entry_points", lambda group: [entry])
    assert formats.registry()["csv"] is formats.BUILTIN["csv"]


# ---------------------------------------------------------------------------- CSV and TSV


def test_csv_with_quoted_multiline_cells_through_the_command(fake_backend, tmp_path):
    path = write(
        tmp_path / "chats.csv",
        'id,dialogue,summary,topic\r\n1,"Anna: hi, you there?\r\nBen: yes","Anna greets Ben.",greeting\r\n'
        '2,"Carl: ""quoted"" word\nDina: ok",,misc\r\n',
    )
    result = run(["-m", "x", path, "--keep-fields", "topic,dialogue"])
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(result.stdout)
    assert [r["id"] for r in rows] == ["1", "2"]
    assert rows[0]["dialogue"] == "Anna: hi, you there?\nBen: yes" and rows[0]["reference"] == "Anna greets Ben."
    assert rows[1]["dialogue"] == 'Carl: "quoted" word\nDina: ok' and "reference" not in rows[1]
    assert rows[0]["topic"] == "greeting"


def test_csv_columns_follow_the_field_options_and_a_missing_column_lists_those_found(tmp_path):
    path = write(tmp_path / "k.csv", "fname,text,summary1\nf1,A: hi,x\n")
    (record,) = read(path, names=FieldNames(text="text", id="fname", reference="summary1"))
    assert (record.id, record.dialogue, record.references) == ("f1", "A: hi", ("x",))
    assert errors(read(path)) == [f"{path}:1: no 'dialogue' column (columns: fname, text, summary1); use --text-field"]


def test_tsv_and_semicolon_free_tables_keep_line_numbers_for_errors(tmp_path):
    path = write(tmp_path / "t.tsv", "id\tdialogue\na\tA: hi\nb\tB: yo\textra\n\nc\tC: ok\n")
    items = read(path)
    assert [r.id for r in items if isinstance(r, Record)] == ["a", "c"]
    assert errors(items) == [f"{path}:3: row has 3 cells, the header 2"]


def test_csv_runaway_quote_and_huge_cell_are_errors_within_the_cap(tmp_path):
    runaway = write(tmp_path / "r.csv", 'id,dialogue\n1,"A: never closed\n' + "B: more\n" * 50)
    reason = "bad CSV row (a cell over 100 bytes (--max-line-bytes))"
    assert errors(read(runaway, max_line_bytes=100)) == [f"{runaway}:2: {reason}"]
    cut = write(tmp_path / "c.csv", 'id,dialogue\n1,"A: cut short\n')
    assert errors(read(cut)) == [f"{cut}:2: bad CSV row (unexpected end of data)"]


def test_csv_bad_utf8_line_is_an_error_in_its_place(tmp_path):
    path = write(tmp_path / "latin1.csv", "id,dialogue\n1,A: caf\xe9\n2,B: ok\n".encode("latin-1"))
    items = read(path)
    assert errors(items) == [f"{path}:2: invalid UTF-8 at byte 8"] and items[-1].dialogue == "B: ok"


# ---------------------------------------------------------------------------- JSON arrays


@pytest.mark.parametrize("indent", [None, 4])
@pytest.mark.parametrize("wrap", [False, True])
def test_samsum_test_json_and_data_documents(fake_backend, tmp_path, indent, wrap):
    value = {"version": "1", "data": SAMSUM} if wrap else SAMSUM
    path = tmp_path / "test.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as stream:
        json.dump(value, stream, indent=indent)
    result = run(["-m", "x", str(path)])
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(result.stdout)
    assert [(r["id"], r["summary"], r["reference"]) for r in rows] == [
        ("13862856", "Hannah: Hey, do you have Betty's number?", SAMSUM[0]["summary"]),
        ("13729565", "Eric: MACHINE!", SAMSUM[1]["summary"]),
    ]


def test_a_cut_json_array_keeps_the_items_before_the_cut_and_names_the_line(tmp_path):
    text = json.dumps(SAMSUM, indent=2)
    path = write(tmp_path / "cut.json", text[: text.index('"Eric')])
    items = read(path)
    assert [r.id for r in items if isinstance(r, Record)] == ["13862856"]
    (error,) = errors(items)
    assert error.startswith(f"{path}:9: invalid JSON (")


def test_json_items_that_are_not_records_are_errors_at_their_line(tmp_path):
    content = '[\n {"dialogue": "A: hi"},\n 3,\n {"summary": "x"},\n {"dialogue": "\\ud800"}\n]'
    path = write(tmp_path / "mixed.json", content)
    assert errors(read(path)) == [
        f"{path}:3: expected a JSON object, got number",
        f"{path}:4: field 'dialogue' is missing (--text-field); fields found: summary",
        f"{path}:5: field 'dialogue' holds a lone surrogate (\\ud800-\\udfff), which is not text",
    ]


@pytest.mark.parametrize(
    "content, reason",
    [
        ("[" * 100_000, "JSON nested too deeply to read"),
        ('[{"dialogue": "A: x", "n": NaN}]', "NaN is not valid JSON (RFC 8259)"),
        ('{\n "about": "x"\n}', "a JSON object with neither a 'data' list nor a 'dialogue' field"),
        ('"just a string"', "expected a JSON array or object"),
    ],
)
def test_hostile_json_documents_are_one_error(tmp_path, content, reason):
    path = write(tmp_path / "h.json", content)
    (error,) = errors(read(path))
    assert error.startswith(f"{path}:1: {reason}")


def test_bad_utf8_inside_a_document_is_named_where_the_cut_is(tmp_path):
    path = write(tmp_path / "b.json", b'[\n{"dialogue": "A: hi"},\n{"dialogue": "B: \xff"}\n]\n')
    items = read(path)
    assert [r.dialogue for r in items if isinstance(r, Record)] == ["A: hi"]
    assert errors(items) == [f"{path}:3: invalid UTF-8 at byte 17"]


def test_a_document_over_the_line_cap_is_one_error(tmp_path):
    path = write(tmp_path / "one-line.json", json.dumps(SAMSUM))
    assert errors(read(path, max_line_bytes=50))[0].startswith(f"{path}:1: line is ")


# ---------------------------------------------------------------------------- sniffing


def test_auto_reads_csv_named_txt_and_says_so(fake_backend, tmp_path):
    path = write(tmp_path / "export.txt", "id,dialogue\n1,A: hi\n")
    result = run(["-m", "x", path])
    assert result.exit_code == 0 and read_jsonl(result.stdout)[0]["id"] == "1"
    assert f"{path}: read as csv: a CSV header naming the 'dialogue' column (its name suggests text)" in result.stderr


def test_auto_reads_a_json_array_on_stdin_and_a_jsonl_file_named_json(fake_backend, tmp_path):
    result = run(["-m", "x"], stdin=json.dumps(SAMSUM, indent=1))
    assert [r["id"] for r in read_jsonl(result.stdout)] == ["13862856", "13729565"]
    assert "<stdin>: read as json: a JSON array" in result.stderr
    path = write(tmp_path / "hf.json", "".join(json.dumps(row) + "\n" for row in SAMSUM))
    result = run(["-m", "x", path])
    assert len(read_jsonl(result.stdout)) == 2
    assert f"{path}: read as jsonl: a JSON object per line (its name suggests json)" in result.stderr


def test_plain_jsonl_and_text_are_read_without_a_word(fake_backend, tmp_path):
    result = run(["-m", "x"], stdin="".join(json.dumps(row) + "\n" for row in SAMSUM))
    assert result.exit_code == 0 and "read as" not in result.stderr
    result = run(["-m", "x"], stdin="Anna: hi, you there?\nBen: yes\n")
    assert result.exit_code == 0 and "read as" not in result.stderr


def test_a_format_asked_for_is_honoured_with_a_warning_when_content_disagrees(fake_backend, tmp_path):
    path = write(tmp_path / "a.csv", "id,dialogue\n1,A: hi\n")
    result = run(["-m", "x", "--format", "text", path])
    assert read_jsonl(result.stdout)[0]["summary"] == "id,dialogue"
    assert f"{path}: read as text as asked, though it looks like csv" in result.stderr


def test_a_telegram_export_given_as_json_names_the_flag(tmp_path):
    path = write(tmp_path / "result.json", json.dumps({"name": "A", "type": "personal_chat", "messages": []}))
    assert errors(read(path, fmt="json")) == [
        f"{path}:1: a telegram export, not records: use --format telegram (or --format auto)"
    ]


def test_utf16_is_one_error_under_auto(fake_backend, tmp_path):
    path = write(tmp_path / "excel.csv", "id,dialogue\n1,A: hi\n".encode("utf-16"))
    result = run(["-m", "x", path])
    assert result.exit_code == 1
    assert f"{path}: UTF-16 text (it starts with a byte-order mark): convert it to UTF-8 first" in result.stderr


def test_keep_fields_dialogue_shows_what_was_summarized_for_jsonl_too(fake_backend):
    row = {"id": "a", "dialogue": "  Anna: hi\r\nBen: yo", "k": 1}
    out = read_jsonl(run(["-m", "x", "--keep-fields", "*"], stdin=json.dumps(row)).stdout)[0]
    assert out["dialogue"] == "Anna: hi\nBen: yo" and out["k"] == 1


def test_a_name_that_agrees_with_the_content_needs_no_word(fake_backend, tmp_path):
    path = write(tmp_path / "test.json", json.dumps(SAMSUM))
    result = run(["-m", "x", path])
    assert result.exit_code == 0 and "read as" not in result.stderr
