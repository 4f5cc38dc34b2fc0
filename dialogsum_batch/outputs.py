"""Where results go: JSONL writers, the errors file, resume bookkeeping and the output lock."""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .errors import DataError, InputError, LockedError
from .records import shorten


# Valid inside JSON strings, but line breaks to str.splitlines() and many JSONL readers: escape them so
# every output line is one line to every reader. json.dumps already escapes the ASCII controls.
LINE_BREAK_ESCAPES = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def jsonl_line(value: dict[str, Any]) -> str:
    """One strict RFC 8259 line: UTF-8 text kept readable, no NaN, no bare Unicode line breaks."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False).translate(LINE_BREAK_ESCAPES) + "\n"


class JsonlWriter:
    """Writes one JSON object per line; ``flush`` after each batch keeps a killed job resumable."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def write(self, value: dict[str, Any]) -> None:
        self.stream.write(jsonl_line(value))

    def flush(self) -> None:
        self.stream.flush()


def open_output(path: str, append: bool) -> IO[str]:
    """stdout for ``-``, else the file (appended to when resuming)."""
    if path == "-":
        return sys.stdout
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return open(path, "a" if append else "w", encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{path}: cannot write ({exc.strerror or exc})") from exc


def error_record(error: InputError) -> dict[str, Any]:
    """How a bad record is written to the errors file."""
    return {"source": error.source, "line": error.line, "reason": error.reason,
            "raw": shorten(error.raw) if error.raw is not None else None}


def done_ids(path: str) -> Counter[str]:
    """How often each id was already written to ``path``, after cutting off a torn last line."""
    return Counter(str(row["id"]) for row in written_rows(path, "id"))


def done_errors(path: str | None) -> set[tuple[str, int | None]]:
    """(source, line) of the bad records already in an errors file, after cutting off a torn last line."""
    return {(row["source"], row["line"]) for row in written_rows(path, "source", "line")} if path else set()


def written_rows(path: str, *keys: str) -> Iterator[dict[str, Any]]:
    """The JSON lines a previous run wrote, each checked for ``keys``; a torn last line is cut off first."""
    file = Path(path)
    if not file.exists():
        return
    try:
        cut_torn_tail(file)
        with open(file, encoding="utf-8") as stream:
            for number, line in enumerate(stream, start=1):
                if line.strip():
                    yield read_row(line, keys, path, number)
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot resume ({exc})") from exc


def read_row(line: str, keys: tuple[str, ...], path: str, number: int) -> dict[str, Any]:
    try:
        row = json.loads(line)
        missing = [key for key in keys if key not in row]
    except (json.JSONDecodeError, TypeError) as exc:
        raise DataError(f"{path}:{number}: cannot resume: not a JSON object ({exc})") from exc
    if missing:
        raise DataError(f"{path}:{number}: cannot resume: no field {missing[0]!r} (was this file written by us?)")
    return row


def cut_torn_tail(file: Path) -> None:
    """Truncate the file after its last newline, dropping a half-written record."""
    with open(file, "rb+") as stream:
        stream.seek(0, os.SEEK_END)
        size = stream.tell()
        if size == 0:
            return
        step = min(size, 1 << 16)
        end = size
        while end > 0:
            start = max(0, end - step)
            stream.seek(start)
            chunk = stream.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                stream.truncate(start + newline + 1)
                return
            end = start
        stream.truncate(0)


class OutputLock:
    """An exclusive ``flock`` beside the output, so two runs never interleave on one file."""

    def __init__(self, path: str):
        self.path = path
        self.stream: IO[str] | None = None

    def __enter__(self) -> OutputLock:
        import fcntl

        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self.stream = open(self.path, "a+", encoding="utf-8")
        except OSError as exc:
            raise DataError(f"{self.path}: cannot create the lock ({exc.strerror or exc})") from exc
        try:
            fcntl.flock(self.stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Path(self.path).read_text(encoding="utf-8").strip() or "another process"
            self.stream.close()
            raise LockedError(f"{self.path} is held by {holder}: another run is writing the same output") from None
        self.stream.truncate(0)
        self.stream.write(f"pid {os.getpid()}\n")
        self.stream.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.stream is not None:
            self.stream.close()  # closing releases the flock
