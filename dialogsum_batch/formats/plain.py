"""The project's own formats: JSONL records (one JSON object per line) and plain-text dialogues separated by
blank lines, one ``Name: text`` turn per line."""

from __future__ import annotations

from collections.abc import Iterator

from .base import MORE, Format, Head, Parsed
from .jsondoc import BROKEN, document_shape, first_value, head_shape, parse_json_line
from .lines import JSON_WHITESPACE, Lines


def parse_jsonl(lines: Lines, source: str) -> Iterator[Parsed]:
    """One JSON object per line; lines of JSON whitespace only are allowed and ignored."""
    for number, text in lines:
        if not isinstance(text, str):
            yield Parsed(number, error=text)
        elif text.strip(JSON_WHITESPACE):
            yield parse_json_line(number, text, source)


def parse_text(lines: Lines, source: str) -> Iterator[Parsed]:
    """Dialogues separated by one or more blank lines, one turn per line.

    Only ASCII blanks separate: a line of other blanks (U+3000, \x1c) belongs to its dialogue, so a
    dialogue made of nothing else becomes a bad record instead of vanishing.
    """
    turns: list[str] = []
    start = 0
    for number, text in lines:
        if not isinstance(text, str):
            yield Parsed(number, error=text)
        elif text.strip(JSON_WHITESPACE):
            start = start or number
            turns.append(text.strip())
        elif start:
            yield Parsed(start, text="\n".join(turn for turn in turns if turn))
            turns, start = [], 0
    if start:
        yield Parsed(start, text="\n".join(turn for turn in turns if turn))


def sniff_jsonl(head: Head) -> str | None:
    first = head.lines[0].lstrip(JSON_WHITESPACE) if head.lines else ""
    if not first.startswith("{"):
        return None
    value = first_value(first)
    if value is BROKEN:
        if head_shape(head.lines) is not None:
            return None  # one document over many lines: the document formats claim it
        if len(head.lines) < 2 and not head.ended:
            return MORE
        return "its first line starts with '{'"  # a broken first record: per-line errors, as JSONL always had
    if isinstance(value, dict) and head.names.text not in value and document_shape(value):
        return None  # a whole export on one line: the document formats claim it
    return "a JSON object per line"


JSONL = Format(
    "jsonl",
    "one JSON object per line (--text-field, --id-field, --reference-field pick the fields)",
    lambda lines, context: parse_jsonl(lines, context.source),
    suffixes=(".jsonl", ".ndjson"),
    sniff=sniff_jsonl,
)
TEXT = Format(
    "text",
    "plain text: dialogues separated by blank lines, one 'Name: text' turn per line",
    lambda lines, context: parse_text(lines, context.source),
    suffixes=(".txt",),
)
