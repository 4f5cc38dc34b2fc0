"""Records and where they come from: every input read by its format (``formats``), each parsed dialogue turned
into a ``Record`` with its stream index and id, or a ``BadRecord`` holding its place.

Readers never raise on bad data: they yield an ``InputError`` in the record's place,
so the caller decides whether to stop or to skip it, and nothing is dropped unseen.
"""

from __future__ import annotations

import glob
import json
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from ..config import ChatSettings, FieldNames
from ..errors import InputError, MissingFieldError
from ..formats import Format, Head, ReadContext, is_folder, parse_input, registry
from ..formats.base import Parsed
from ..formats.detect import choose, resolve
from ..formats.jsondoc import json_type
from ..formats.lines import (  # noqa: F401 (RAW_LIMIT, decoded_lines re-exported: the line reader every format shares)
    MAX_LINE_BYTES,
    RAW_LIMIT,
    STDIN,
    decoded_lines,
    open_binary,
    shorten,
)
from ..logs import Log
from ..text import normalise


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
    meta: Mapping[str, Any] = field(default_factory=dict)  # written with every summary (chats: chat, start, end)
    offset: int = field(default=0, compare=False)  # bytes of its file read once parsed (of a .gz: compressed)


@dataclass(frozen=True)
class BadRecord:
    """A record that could not be read; holds its place in the stream."""

    index: int
    error: InputError


Item = Record | BadRecord


def detect_format(path: str, first_line: str | None, names: FieldNames = FieldNames()) -> str:
    """The format ``auto`` picks for an input named ``path`` whose first non-blank line is ``first_line``."""
    head = Head(path, lines=(first_line,) if first_line is not None else (), names=names)
    chosen = choose("auto", head, registry(), ReadContext(path, names))
    return chosen.name if isinstance(chosen, Format) else "text"


def sniffed_lines(
    path: str, stream: IO[bytes], fmt: str, limit: int = MAX_LINE_BYTES
) -> tuple[str, Iterator[tuple[int, str | InputError]]]:
    """Resolve ``auto`` by peeking at the first lines, then give all lines back."""
    chosen, lines = resolve(ReadContext(path, limit=limit), fmt, stream, registry())
    return (chosen.name if isinstance(chosen, Format) else "text"), lines


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
        record_id = parsed.id or default_id
        return Record(index, record_id, dialogue, source=source, line=parsed.line, meta=dict(parsed.meta))
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


def expand(paths: Iterable[str]) -> list[str]:
    """Paths as given; a quoted glob that names no file literally is expanded (sorted)."""
    result: list[str] = []
    for path in paths:
        matches = sorted(glob.glob(path)) if any(c in path for c in "*?[") and not Path(path).exists() else []
        result.extend(matches or [path])
    return result or [STDIN]


def read_records(
    paths: Iterable[str],
    fmt: str = "auto",
    names: FieldNames = FieldNames(),
    max_line_bytes: int = MAX_LINE_BYTES,
    chats: ChatSettings = ChatSettings(),
    log: Log | None = None,
) -> Iterator[Item]:
    """Stream records from every path in turn, indices counting across files.

    A file that cannot be opened or read to its end (a missing file, a corrupt or cut .gz) becomes a
    BadRecord where it stops, so the records before it still flow and ``--on-error skip`` goes on with
    the next file. ``log`` hears which format ``auto`` chose where the content, not the name, decided.
    """
    return read_files(expand(paths), fmt, names, max_line_bytes, chats, log)


def read_files(
    paths: Iterable[str],
    fmt: str = "auto",
    names: FieldNames = FieldNames(),
    max_line_bytes: int = MAX_LINE_BYTES,
    chats: ChatSettings = ChatSettings(),
    log: Log | None = None,
) -> Iterator[Item]:
    """``read_records`` over paths expanded already: no glob is expanded again, and no path reads nothing
    (not stdin), so a job that left its own files out of a glob reads exactly what it chose."""
    index = 0
    formats = registry()
    for path in paths:
        context = ReadContext(path, names, chats, max_line_bytes, log)
        for item in file_records(context, index, fmt, formats):
            yield item
            index += 1


def consumed(stream: IO[bytes]) -> int:
    """Bytes of the file read so far: of the compressed file under a gzip reader, so progress has a total.
    Nothing on stdin (a pipe has no position)."""
    try:
        return getattr(stream, "fileobj", stream).tell()  # GzipFile reads its compressed file through fileobj
    except (OSError, ValueError, AttributeError):
        return 0


def file_records(
    context: ReadContext, start: int, fmt: str, formats: Mapping[str, Format] | None = None
) -> Iterator[Item]:
    """One input's records, indexed from ``start``; a read failure ends the input with a BadRecord. A folder
    is not opened here: a format that reads folders (a Slack export) opens what it needs."""
    source, path = context.source, context.path
    stream = None
    if not is_folder(path):
        try:
            stream = open_binary(path)
        except OSError as exc:
            yield BadRecord(start, InputError(source, None, f"cannot open ({exc.strerror or exc})"))
            return
    index, line = start, 0
    try:
        for parsed in parse_input(context, fmt, stream, formats):
            item = to_record(parsed, index, source, context.names, stdin=False)  # stdin too: <stdin>:LINE
            yield replace(item, offset=consumed(stream)) if isinstance(item, Record) and path != STDIN else item
            index, line = index + 1, parsed.line
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:  # a corrupt or cut .gz or .zip, a read error
        yield BadRecord(index, InputError(source, None, f"cannot read past line {line} ({exc})"))
    finally:
        if stream is not None and path != STDIN:
            stream.close()
