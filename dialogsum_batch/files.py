"""File mechanics written once for records, corpora, outputs, caches, exports and model files.

* ``exclusive_lock``: an ``flock`` on a lock file, held for a block; waiting for it, or not.
* ``publish_file`` / ``staging_dir`` / ``publish_dir``: written aside, then renamed into place, so a
  reader sees the old file (folder) or the new one, never half of one; a failure leaves nothing behind.
* ``sha256_file`` / ``Sha256Counter``: content digests, read and counted in chunks.
* ``capped_lines``: lines with a length cap; a longer line is read past, never held.
* ``loads_json_limited`` / ``decode_json_limited``: ``json`` with the valid JSON Python refuses (deep nesting,
  4,300+ digit integers) and non-RFC constants (NaN, Infinity) raised as one ``JsonLimitError``.

What a lock's holder writes into the lock file (its pid), what a message says, and which exception a caller
raises: those stay with the caller.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, AnyStr

try:
    import fcntl
except ImportError:  # Windows: no lock; writing aside and renaming still keeps half-written files out of sight
    fcntl = None  # type: ignore[assignment]

CHUNK = 1 << 20  # bytes per read while hashing, and while skipping an over-long line
PathLike = str | os.PathLike[str]

# ----------------------------------------------------------------------------- locks


@contextmanager
def exclusive_lock(path: PathLike, wait: bool, waiting: Callable[[], None] | None = None) -> Iterator[IO[str] | None]:
    """Hold an exclusive ``flock`` on ``path`` (created when missing) for the block.

    Yields the open lock file (read and write, for a holder that names itself in it), or None when ``wait``
    is off and another process holds it. With ``wait``, ``waiting`` is called once before blocking. Closing
    the file releases the lock, even when the process dies; the file stays (removing it is the caller's
    choice). An ``OSError`` opening the file reaches the caller, who knows what the file is for.
    """
    with open(path, "a+", encoding="utf-8") as handle:
        yield handle if _flock(handle, wait, waiting) else None


def _flock(handle: IO[str], wait: bool, waiting: Callable[[], None] | None) -> bool:
    if fcntl is None:
        return True
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        if not wait:
            return False
        if waiting is not None:
            waiting()
        fcntl.flock(handle, fcntl.LOCK_EX)
    return True


# ----------------------------------------------------------------------------- publishing


@contextmanager
def publish_file(path: PathLike, mode: str = "w", durable: bool = False) -> Iterator[IO[Any]]:
    """An open file beside ``path`` (``mode`` "w" for UTF-8 text, "wb" for bytes), renamed over ``path`` when
    the block ends; an exception in the block removes it and leaves ``path`` as it was. ``durable``: the bytes
    reach the disk before the rename (a crash leaves the whole new file or the old one)."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.part")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as to open()
    try:
        with os.fdopen(descriptor, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_json_atomic(path: PathLike, data: Any) -> None:
    """``data`` as indented JSON, published whole."""
    with publish_file(path) as handle:
        handle.write(json.dumps(data, indent=2) + "\n")


@contextmanager
def staging_dir(parent: Path, prefix: str) -> Iterator[Path]:
    """A fresh hidden folder ``parent/<prefix><pid>-<random>``, removed when the block ends unless it was
    published (renamed away) in it."""
    staging = parent / f"{prefix}{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish_dir(staging: Path, target: Path, replaceable: Callable[[Path], bool] = lambda _: True) -> bool:
    """Rename the finished ``staging`` folder to ``target``. A folder already there is first moved aside (one
    atomic rename: what is checked is what gets deleted) and removed once ``replaceable`` accepts it there;
    refused, it is moved back and False returned, ``staging`` left in place."""
    if not target.exists():
        staging.rename(target)
        return True
    aside = target.parent / f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}"
    target.rename(aside)
    if not replaceable(aside):
        aside.rename(target)
        return False
    staging.rename(target)
    shutil.rmtree(aside, ignore_errors=True)
    return True


# ----------------------------------------------------------------------------- digests


class Sha256Counter:
    """A running sha256 and byte count of what passes through ``update``."""

    def __init__(self) -> None:
        self.digest, self.size = hashlib.sha256(), 0

    def update(self, chunk: bytes) -> None:
        self.digest.update(chunk)
        self.size += len(chunk)

    def hexdigest(self) -> str:
        return self.digest.hexdigest()


def sha256_file(path: PathLike) -> tuple[int, str]:
    """Size and sha256 of a file's content, read in chunks (memory stays flat for any size)."""
    counter = Sha256Counter()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            counter.update(chunk)
    return counter.size, counter.hexdigest()


# ----------------------------------------------------------------------------- lines


def capped_lines(stream: IO[AnyStr], limit: int) -> Iterator[AnyStr | int]:
    """Each line (bytes or text, as the stream gives), or for a line over ``limit`` (bytes or characters, its
    newline not counted) the length read of it so far, an int over ``limit``.

    The over-long line is reported as soon as it passes the limit, and read past (never held) only when the
    next line is asked for: a consumer that stops at it never waits for a line that does not end.
    """
    while raw := stream.readline(limit + 1):
        newline = "\n" if isinstance(raw, str) else b"\n"
        if len(raw) - raw.endswith(newline) <= limit:  # type: ignore[arg-type]
            yield raw
            continue
        yield len(raw)
        while not raw.endswith(newline) and (raw := stream.readline(CHUNK)):  # type: ignore[arg-type]
            pass


@contextmanager
def csv_field_limit(limit: int) -> Iterator[None]:
    """The csv module's cell cap (one value for the whole process) at ``limit`` for the block, then back as it
    was: each reader gets its own cap, whatever another reader set before it or between its rows."""
    saved = csv.field_size_limit(limit)
    try:
        yield
    finally:
        csv.field_size_limit(saved)


# ----------------------------------------------------------------------------- JSON

NESTED_TOO_DEEPLY = "JSON nested too deeply to read"
NUMBER_TOO_LONG = "a number too long to read (over 4,300 digits)"


class JsonLimitError(ValueError):
    """Valid JSON that Python will not read (nested thousands deep, an integer past the digit limit), or a
    constant RFC 8259 lacks (NaN, Infinity) where those are refused."""


def _reject_constant(name: str) -> Any:
    raise JsonLimitError(f"{name} is not valid JSON (RFC 8259)")


DECODERS = {False: json.JSONDecoder(), True: json.JSONDecoder(parse_constant=_reject_constant)}


@contextmanager
def json_limits() -> Iterator[None]:
    """Turn Python's refusals of valid JSON in the block into one ``JsonLimitError`` saying which.

    ``json.JSONDecodeError`` (not JSON) and ``UnicodeDecodeError`` (not UTF-8) pass as they are."""
    try:
        yield
    except (json.JSONDecodeError, UnicodeDecodeError, JsonLimitError):
        raise
    except RecursionError:
        raise JsonLimitError(NESTED_TOO_DEEPLY) from None
    except ValueError:  # int() of 4,300+ digits: the only other ValueError a JSON decoder raises
        raise JsonLimitError(NUMBER_TOO_LONG) from None


def loads_json_limited(data: str | bytes, reject_constants: bool = False) -> Any:
    """``json.loads`` under ``json_limits``; NaN and Infinity refused with ``reject_constants``. Cap the size
    before reading (``capped_lines``, a stat): this reads what it is given."""
    with json_limits():
        return json.loads(data, parse_constant=_reject_constant) if reject_constants else json.loads(data)


def decode_json_limited(text: str, pos: int = 0, reject_constants: bool = False) -> tuple[Any, int]:
    """The JSON value starting at ``pos`` and the position after it (``raw_decode``), under ``json_limits``."""
    with json_limits():
        return DECODERS[reject_constants].raw_decode(text, pos)
