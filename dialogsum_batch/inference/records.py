"""Records and their readers: JSONL or plain text, from files, .gz files or stdin.

Readers never raise on bad data: they yield an ``InputError`` in the record's place,
so the caller decides whether to stop or to skip it, and nothing is dropped unseen.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from ..config import FieldNames
from ..errors import InputError, MissingFieldError
from ..text import normalise

RAW_LIMIT = 500  # characters of a bad line kept in error reports
STDIN = "-"
MAX_LINE_BYTES = 16 * 1024 * 1024  # a line longer than this is an error, read past without holding it
SKIP_CHUNK = 1024 * 1024  # bytes read at a time while skipping an over-long line
GZIP_MAGIC = b"\x1f\x8b"
JSON_WHITESPACE = " \t\r\n"  # RFC 8259's blanks; a line of others (U+3000, \x1c, \x85) is not empty


@dataclass(frozen=True)
class Record:
    """One dialogue to summarize, with where it came from."""

    index: int  # position in the whole input stream, from 0
    id: str
    dialogue: str
    references: tuple[str, ...] = ()
    source: str = STDIN
    line: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)  # the other input fields
    offset: int = field(default=0, compare=False)  # bytes of its file read once parsed (of a .gz: compressed)


@dataclass(frozen=True)
class BadRecord:
    """A record that could not be read; holds its place in the stream."""

    index: int
    error: InputError


Item = Record | BadRecord


@dataclass(frozen=True)
class Parsed:
    """A reader's output before stream indices are assigned."""

    line: int
    fields: Mapping[str, Any] | None = None
    text: str | None = None
    error: InputError | None = None


# ---------------------------------------------------------------------------- lines


def open_binary(path: str) -> IO[bytes]:
    """Open a path (or ``-`` for stdin) for binary reading, gunzipping what starts with gzip's magic."""
    stream = stdin_binary() if path == STDIN else open(path, "rb")
    if not hasattr(stream, "peek"):  # a BytesIO standing in for stdin (tests, embedding programs)
        stream = io.BufferedReader(stream)
    if stream.peek(2)[:2] != GZIP_MAGIC:  # by content, not name: gzip on stdin and misnamed files work
        return stream
    if path == STDIN:
        return gzip.GzipFile(fileobj=stream, mode="rb")
    stream.close()
    return gzip.open(path, "rb")


def stdin_binary() -> IO[bytes]:
    """stdin through a reader of its own over fd 0. A reader thread blocked on a stalled producer then holds
    no lock of ``sys.stdin.buffer``, which Python's exit needs (it aborts otherwise). A stand-in without a
    file descriptor (CliRunner, embedding programs) is used as it is."""
    try:
        return open(sys.stdin.fileno(), "rb", closefd=False)
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both an OSError and a ValueError
        return sys.stdin.buffer


def bounded_lines(stream: IO[bytes], limit: int) -> Iterator[bytes | int]:
    """Each line's bytes, or for a line over ``limit`` bytes the bytes read of it so far (more than ``limit``).

    The over-long line is reported as soon as it passes the limit, and read past (never held) only when the
    next line is asked for: a consumer that stops at it (``--on-error fail``) never waits for a line that
    does not end.
    """
    while raw := stream.readline(limit + 1):
        content = len(raw) - raw.endswith(b"\n")
        if content <= limit:
            yield raw
            continue
        yield len(raw)
        while not raw.endswith(b"\n") and (raw := stream.readline(SKIP_CHUNK)):
            pass


def decoded_lines(
    stream: IO[bytes], source: str, limit: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, str | InputError]]:
    """Yield (line number, text) with BOM, CRLF, bad UTF-8 and over-long lines handled per line."""
    for number, raw in enumerate(bounded_lines(stream, limit), start=1):
        if isinstance(raw, int):
            reason = f"line is over the {limit:,}-byte limit (--max-line-bytes)"
            yield number, InputError(source, number, reason)
            continue
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        raw = raw.rstrip(b"\r\n")
        if b"\x00" in raw:
            yield number, InputError(source, number, "binary data (NUL bytes)", shorten(raw))
            continue
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            reason = f"invalid UTF-8 at byte {exc.start}"
            yield number, InputError(source, number, reason, shorten(raw))


def shorten(raw: bytes | str) -> str:
    """A bad line cut to a sane length for error reports."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT] + "..."


# ---------------------------------------------------------------------------- formats


def parse_jsonl(lines: Iterable[tuple[int, str | InputError]], source: str) -> Iterator[Parsed]:
    """One JSON object per line; lines of JSON whitespace only are allowed and ignored."""
    for number, text in lines:
        if isinstance(text, InputError):
            yield Parsed(number, error=text)
        elif text.strip(JSON_WHITESPACE):
            yield parse_json_line(number, text, source)


def parse_json_line(number: int, text: str, source: str) -> Parsed:
    try:
        value = json.loads(text, parse_constant=_reject_constant)
        reason = object_problem(value)
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON ({exc.msg})"
    except RecursionError:  # valid JSON nested thousands deep: Python's parser (or writer) gives up
        reason = "JSON nested too deeply to read"
    except ValueError as exc:  # NaN / Infinity, or an integer past Python's digit limit
        reason = str(exc) if "RFC 8259" in str(exc) else "a number too long to read (over 4,300 digits)"
    if reason:
        return Parsed(number, error=InputError(source, number, reason, shorten(text)))
    return Parsed(number, fields=value)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON (RFC 8259)")


def object_problem(value: Any) -> str | None:
    """Why a parsed line cannot be a record (not an object, a lone surrogate anywhere), or None."""
    if not isinstance(value, dict):
        return f"expected a JSON object, got {json_type(value)}"
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # "\ud800" escapes decode to a str that no UTF-8 writer can write
        bad = next((key for key, item in value.items() if not _encodable(key, item)), "?")
        return f"field '{_printable(bad)}' holds a lone surrogate (\\ud800-\\udfff), which is not text"
    return None


def _encodable(key: str, item: Any) -> bool:
    try:
        json.dumps({key: item}, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def parse_text(lines: Iterable[tuple[int, str | InputError]], source: str) -> Iterator[Parsed]:
    """Dialogues separated by one or more blank lines, one turn per line.

    Only ASCII blanks separate: a line of other blanks (U+3000, \x1c) belongs to its dialogue, so a
    dialogue made of nothing else becomes a bad record instead of vanishing.
    """
    turns: list[str] = []
    start = 0
    for number, text in lines:
        if isinstance(text, InputError):
            yield Parsed(number, error=text)
        elif text.strip(JSON_WHITESPACE):
            start = start or number
            turns.append(text.strip())
        elif start:
            yield Parsed(start, text="\n".join(turn for turn in turns if turn))
            turns, start = [], 0
    if start:
        yield Parsed(start, text="\n".join(turn for turn in turns if turn))


FORMATS: dict[str, Callable[[Iterable[tuple[int, str | InputError]], str], Iterator[Parsed]]] = {
    "jsonl": parse_jsonl,
    "text": parse_text,
}
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")


def detect_format(path: str, first_line: str | None) -> str:
    """Pick a format from the file name, else from the first non-blank line."""
    name = path[:-3] if path.endswith(".gz") else path
    if name.endswith(JSONL_SUFFIXES):
        return "jsonl"
    if name.endswith(".txt"):
        return "text"
    return "jsonl" if first_line is not None and first_line.lstrip().startswith("{") else "text"


def first_text(lines: list[tuple[int, str | InputError]]) -> str | None:
    for _, text in lines:
        if isinstance(text, str) and text.strip(JSON_WHITESPACE):
            return text
    return None


def parsed_file(path: str, stream: IO[bytes], fmt: str, limit: int = MAX_LINE_BYTES) -> Iterator[Parsed]:
    """A file's parsed records, ``auto`` resolved by peeking at its first lines.

    Bad lines met while peeking come out at once, ahead of the format: an over-long first line that never
    ends stops ``--on-error fail`` there instead of being waited past; no line is lost either way.
    """
    source = display_name(path)
    lines = decoded_lines(stream, source, limit)
    head: list[tuple[int, str | InputError]] = []
    if fmt == "auto":
        for number, text in lines:
            if isinstance(text, InputError):
                yield Parsed(number, error=text)
                continue
            head.append((number, text))
            if text.strip(JSON_WHITESPACE):
                break
        fmt = detect_format(path, first_text(head))
    yield from FORMATS[fmt](_chain(head, lines), source)


def _chain(head: list, rest: Iterator) -> Iterator:
    yield from head
    yield from rest


def display_name(path: str) -> str:
    return "<stdin>" if path == STDIN else path


# ---------------------------------------------------------------------------- records


def to_record(parsed: Parsed, index: int, source: str, names: FieldNames, stdin: bool) -> Item:
    """Turn a parsed line into a Record, or a BadRecord naming the bad field."""
    if parsed.error is not None:
        return BadRecord(index, parsed.error)
    default_id = str(index) if stdin else f"{source}:{parsed.line}"
    if parsed.text is not None:
        dialogue = normalise(parsed.text)
        if not dialogue:  # turns of exotic blanks only (U+3000, \x1c, \x85): accounted for, not dropped
            return BadRecord(
                index, InputError(source, parsed.line, "dialogue holds no visible text", shorten(parsed.text))
            )
        return Record(index, default_id, dialogue, source=source, line=parsed.line)
    fields = dict(parsed.fields or {})
    lacking = missing_field(fields, names)
    if lacking:
        raw = shorten(json.dumps(fields, ensure_ascii=False))
        return BadRecord(index, MissingFieldError(source, parsed.line, *lacking, tuple(fields), raw))
    try:
        dialogue = required_text(fields, names.text)
        references = optional_references(fields, names.reference)
        record_id = optional_id(fields, names.id) or default_id
    except ValueError as exc:
        return BadRecord(
            index, InputError(source, parsed.line, str(exc), shorten(json.dumps(fields, ensure_ascii=False)))
        )
    extra = {k: v for k, v in fields.items() if k not in (names.text, names.id, names.reference)}
    return Record(index, record_id, normalise(dialogue), references, source, parsed.line, extra)


def missing_field(fields: Mapping[str, Any], names: FieldNames) -> tuple[str, str] | None:
    """The field a record lacks and the option naming it: the text field, or an id field other than the
    default ``id`` (a record without ``id`` is named FILE:LINE; one chosen by name must be there)."""
    if names.text not in fields:
        return names.text, "--text-field"
    if names.id != FieldNames.id and names.id not in fields:
        return names.id, "--id-field"
    return None


def required_text(fields: Mapping[str, Any], name: str) -> str:
    if name not in fields:
        raise ValueError(f"field '{name}' is missing")
    value = fields[name]
    if not isinstance(value, str):
        raise ValueError(f"field '{name}' must be a string, got {json_type(value)}")
    if not value.strip():
        raise ValueError(f"field '{name}' is empty")
    return value


def optional_references(fields: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = fields.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value.strip() else ()
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v for v in value if v.strip())
    raise ValueError(f"field '{name}' must be a string or a list of strings, got {json_type(value)}")


def optional_id(fields: Mapping[str, Any], name: str) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    kind = "a non-integer number" if isinstance(value, float) else json_type(value)
    raise ValueError(f"field '{name}' must be a string or an integer, got {kind}")


def json_type(value: Any) -> str:
    names = {str: "string", int: "number", float: "number", bool: "boolean", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def expand(paths: Iterable[str]) -> list[str]:
    """Paths as given; a quoted glob that names no file literally is expanded (sorted)."""
    result: list[str] = []
    for path in paths:
        matches = sorted(glob.glob(path)) if any(c in path for c in "*?[") and not Path(path).exists() else []
        result.extend(matches or [path])
    return result or [STDIN]


def read_records(
    paths: Iterable[str], fmt: str = "auto", names: FieldNames = FieldNames(), max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Item]:
    """Stream records from every path in turn, indices counting across files.

    A file that cannot be opened or read to its end (a missing file, a corrupt or cut .gz) becomes a
    BadRecord where it stops, so the records before it still flow and ``--on-error skip`` goes on with
    the next file.
    """
    return read_files(expand(paths), fmt, names, max_line_bytes)


def read_files(
    paths: Iterable[str], fmt: str = "auto", names: FieldNames = FieldNames(), max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Item]:
    """``read_records`` over paths expanded already: no glob is expanded again, and no path reads nothing
    (not stdin), so a job that left its own files out of a glob reads exactly what it chose."""
    index = 0
    for path in paths:
        for item in file_records(path, index, fmt, names, max_line_bytes):
            yield item
            index += 1


def consumed(stream: IO[bytes]) -> int:
    """Bytes of the file read so far: of the compressed file under a gzip reader, so progress has a total."""
    try:
        return getattr(stream, "fileobj", stream).tell()  # GzipFile reads its compressed file through fileobj
    except (OSError, ValueError, AttributeError):
        return 0


def file_records(
    path: str, start: int, fmt: str, names: FieldNames, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Item]:
    """One file's records, indexed from ``start``; a read failure ends the file with a BadRecord."""
    source = display_name(path)
    try:
        stream = open_binary(path)
    except OSError as exc:
        yield BadRecord(start, InputError(source, None, f"cannot open ({exc.strerror or exc})"))
        return
    index, line = start, 0
    try:
        for parsed in parsed_file(path, stream, fmt, max_line_bytes):
            item = to_record(parsed, index, source, names, stdin=False)  # stdin too: <stdin>:LINE, never an index
            yield replace(item, offset=consumed(stream)) if isinstance(item, Record) and path != STDIN else item
            index, line = index + 1, parsed.line
    except (OSError, EOFError, zlib.error) as exc:  # a corrupt or cut .gz file, a read error
        yield BadRecord(index, InputError(source, None, f"cannot read past line {line} ({exc})"))
    finally:
        if path != STDIN:
            stream.close()
