"""Bytes to numbered lines, written once for every format: gzip by content, stdin, a byte cap per line
(``files.capped_lines``: a longer line is read past, never held), BOM, CRLF, NUL bytes and bad UTF-8 turned
into errors per line.

Readers never raise on bad data: a line that cannot be text comes as an ``InputError`` in its place.
"""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterable, Iterator
from typing import IO

from ..errors import InputError
from ..files import capped_lines

RAW_LIMIT = 500  # characters of a bad line kept in error reports
STDIN = "-"
MAX_LINE_BYTES = 16 * 1024 * 1024  # a line longer than this is an error, read past without holding it
GZIP_MAGIC = b"\x1f\x8b"
JSON_WHITESPACE = " \t\r\n"  # RFC 8259's blanks; a line of others (U+3000, \x1c, \x85) is not empty

Lines = Iterable[tuple[int, "str | InputError"]]  # (line number from 1, its text or why it is none)


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


def decoded_lines(
    stream: IO[bytes], source: str, limit: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, str | InputError]]:
    """Yield (line number, text) with BOM, CRLF, bad UTF-8 and over-long lines handled per line."""
    for number, raw in enumerate(capped_lines(stream, limit), start=1):
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


def display_name(path: str) -> str:
    return "<stdin>" if path == STDIN else path
