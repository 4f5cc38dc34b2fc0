"""Tables of dialogues: CSV and TSV with a header row, and JSON arrays of records (SAMSum's own ``test.json``)
or ``{"data": [...]}`` documents. Columns and keys are picked with --text-field, --id-field and
--reference-field, as for JSONL."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from typing import Any

from ..errors import InputError
from ..files import csv_field_limit
from .base import MORE, Format, Head, Parsed, ReadContext
from .jsondoc import JsonDocument, JsonProblem, document_shape, object_problem, read_document, sniff_shape, start_of
from .lines import Lines, shorten

NAME_CELL = re.compile(r"[^\W\d][\w.-]{0,63}")  # a header cell as exports name columns: dialogue, speaker_id


class _RowLines:
    """Lines for ``csv.reader`` with their line ends back (quoted cells span lines), remembering where each row
    starts and setting aside the lines that are not text."""

    def __init__(self, lines: Lines):
        self.lines = iter(lines)
        self.start = 0  # line of the row being read
        self.errors: list[InputError] = []

    def __iter__(self) -> _RowLines:
        return self

    def __next__(self) -> str:
        for number, text in self.lines:
            if isinstance(text, str):
                self.start = self.start or number
                return text + "\n"
            self.errors.append(text)
        raise StopIteration


def read_delimited(lines: Lines, context: ReadContext, delimiter: str) -> Iterator[Parsed]:
    """Rows of a table with a header row; a row that cannot be read is an error in its place."""
    rows = _RowLines(lines)
    reader = csv.reader(rows, delimiter=delimiter, strict=True)
    kind = "TSV" if delimiter == "\t" else "CSV"
    header: list[str] | None = None
    while True:
        try:
            with csv_field_limit(context.limit):  # a cell's cap is the line cap: a runaway quote cannot hold a file
                row = next(reader)
            problem = None
        except StopIteration:
            break
        except csv.Error as exc:
            row, problem = [], str(exc)
        yield from (Parsed(error.line or 0, error=error) for error in rows.errors)
        start, rows.start, rows.errors = rows.start, 0, []
        if problem:
            runaway = "field limit" in problem  # an unclosed quote, most likely: nothing after it can be trusted
            reason = f"a cell over {context.limit:,} bytes (--max-line-bytes)" if runaway else problem
            yield context.error(start, f"bad {kind} row ({reason})")
            if runaway:
                return
        elif header is None and any(cell.strip() for cell in row):
            header = [cell.strip() for cell in row]
            if context.names.text not in header:
                columns = ", ".join(header)
                yield context.error(start, f"no '{context.names.text}' column (columns: {columns}); use --text-field")
                return
        elif header is not None and any(cell.strip() for cell in row):
            yield table_row(header, row, start, context)
    yield from (Parsed(error.line or 0, error=error) for error in rows.errors)


def table_row(header: list[str], row: list[str], line: int, context: ReadContext) -> Parsed:
    if len(row) != len(header):
        raw = shorten(",".join(row))
        return context.error(line, f"row has {len(row)} cells, the header {len(header)}", raw)
    return Parsed(line, fields=dict(zip(header, row)))


def sniff_delimited(head: Head, delimiter: str) -> str | None:
    """A header row of column names, and a next row with as many cells (or the --text-field among them)."""
    if not head.lines or delimiter not in head.lines[0]:
        return None
    try:
        rows = list(csv.reader([line + "\n" for line in head.lines], delimiter=delimiter))
    except csv.Error:
        return None
    header = [cell.strip() for cell in rows[0]]
    named = head.names.text in header
    if len(header) < 2 or not (named or all(NAME_CELL.fullmatch(cell) for cell in header)):
        return None
    kind = "TSV" if delimiter == "\t" else "CSV"
    if named:
        return f"a {kind} header naming the '{head.names.text}' column"
    if len(rows) < 2:
        return None if head.ended or len(head.lines) > 1 else MORE
    return f"a {kind} header row ({', '.join(header[:4])})" if len(rows[1]) == len(header) else None


CSV = Format(
    "csv",
    "CSV with a header row; quoted cells may span lines",
    lambda lines, context: read_delimited(lines, context, ","),
    suffixes=(".csv",),
    sniff=lambda head: sniff_delimited(head, ","),
)
TSV = Format(
    "tsv",
    "tab-separated values with a header row",
    lambda lines, context: read_delimited(lines, context, "\t"),
    suffixes=(".tsv", ".tab"),
    sniff=lambda head: sniff_delimited(head, "\t"),
)


# ---------------------------------------------------------------------------- JSON arrays


def read_json(lines: Lines, context: ReadContext) -> Iterator[Parsed]:
    """A JSON array of records, a ``{"data": [...]}`` document, or one record object."""
    document = read_document(lines, context)
    if isinstance(document, Parsed):
        yield document
        return
    try:
        yield from json_records(document, context)
    except JsonProblem as problem:
        yield context.error(problem.line, problem.reason)
        return
    if document.cut is not None:  # the document was whole, but a line after it was not text
        yield Parsed(document.cut.line or 0, error=document.cut)


def json_records(document: JsonDocument, context: ReadContext) -> Iterator[Parsed]:
    first = start_of(document)
    if first == "[":
        yield from array_records(document, document.skip(0), context)
    elif first == "{":
        head, data = document.until_key(0, "data")
        if data is not None:
            yield from array_records(document, data, context)
        else:
            yield object_record(head, document.line(document.skip(0)), context)
    elif first:
        raise document.problem(document.skip(0), "expected a JSON array or object")


def array_records(document: JsonDocument, pos: int, context: ReadContext) -> Iterator[Parsed]:
    for number, (line, value) in enumerate(document.items(pos)):
        if number == 0 and slack_day(value, context):
            yield context.error(line, "one day of a Slack export: give the export's .zip or folder (--format slack)")
            return
        reason = object_problem(value)
        yield context.error(line, reason, _raw(value)) if reason else Parsed(line, fields=value)


def slack_day(value: Any, context: ReadContext) -> bool:
    """A Slack message where a record should be: the file is a day of a channel, not a table."""
    return (
        isinstance(value, dict) and value.get("type") == "message" and "ts" in value and context.names.text not in value
    )


def object_record(value: dict[str, Any], line: int, context: ReadContext) -> Parsed:
    """A lone object is one record when it holds the text field; an export of another format says which."""
    if context.names.text in value:
        reason = object_problem(value)
        return context.error(line, reason, _raw(value)) if reason else Parsed(line, fields=value)
    shape = document_shape(value)
    if shape in ("telegram", "discord"):
        return context.error(line, f"a {shape} export, not records: use --format {shape} (or --format auto)")
    return context.error(
        line,
        f"a JSON object with neither a 'data' list nor a '{context.names.text}' field; formats tried: json "
        '(arrays, {"data": [...]}, one record), telegram, discord',
    )


def _raw(value: Any) -> str:
    try:
        return shorten(json.dumps(value, ensure_ascii=False))
    except (ValueError, RecursionError):
        return ""


def sniff_json(head: Head) -> str | None:
    if head.lines and head.lines[0].lstrip().startswith("["):
        return "a JSON array"
    return sniff_shape(head, "data", "document")


JSON = Format(
    "json",
    'a JSON array of records, or {"data": [...]} (SAMSum\'s test.json)',
    read_json,
    suffixes=(".json",),
    sniff=sniff_json,
)
