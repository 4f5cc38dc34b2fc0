"""Where results go: each outcome as a row (ROUGE when it has references) or a bad record, the counts of
what was written, JSONL writers, the errors file, resume bookkeeping and the output lock."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .. import rouge
from ..config import FieldNames
from ..errors import DataError, DialogsumError, InputError, LockedError, MissingFieldError, OutputClosed, fields_found
from ..files import JsonLimitError, capped_lines, exclusive_lock, loads_json_limited
from ..logs import Log
from .engine import EngineCounts, Outcome
from .records import MAX_LINE_BYTES, Record, json_type, shorten

MISSING_FIELDS_KEPT = 100  # field names remembered from records that lacked a named field, for the message
OUTPUT_FIELDS = frozenset(
    {"id", "summary", "reference", "references", "rouge", "truncated", "chunks"}
)  # never taken from --keep-fields


@dataclass
class Stats:
    """What a job did, for the stderr summary and the metrics file."""

    records: int = 0  # summaries written
    errors: int = 0  # bad records reported
    truncated: int = 0
    resumed: int = 0  # already in the output file, skipped
    other_shards: int = 0  # left to other shards
    generated_tokens: int = 0
    engine: EngineCounts = field(default_factory=EngineCounts)  # every process's engine, added at the end
    started: float = field(default_factory=time.perf_counter)
    scores: rouge.RougeMean = field(default_factory=rouge.RougeMean)

    def report(self) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.started
        work = self.engine
        result: dict[str, Any] = {
            "records": self.records,
            "errors": self.errors,
            "truncated": self.truncated,
            "resumed": self.resumed,
            "other_shards": self.other_shards,
            "batches": work.batches,
            "oom_splits": work.oom_splits,
            "seconds": round(elapsed, 3),
            "generate_seconds": round(work.generate_seconds, 3),
            "dialogues_per_second": round(self.records / elapsed, 3) if elapsed > 0 else 0.0,
            "generated_tokens": self.generated_tokens,
            "padding_efficiency": round(work.real_tokens / work.padded_tokens, 4) if work.padded_tokens else None,
        }
        if self.scores.n:
            result["rouge"] = {key: round(value, 4) for key, value in self.scores.mean().items()}
            result["rouge_records"] = self.scores.n
        return result


def summary_row(record: Record, outcome: Outcome, keep_fields: tuple[str, ...] = ()) -> dict[str, Any]:
    """One output line: id and summary, where a chat's dialogue came from (chat, start, end, source), the
    reference and ROUGE when the record has one, the kept fields; ``dialogue`` kept is the text summarized."""
    row: dict[str, Any] = {"id": record.id, "summary": outcome.summary}
    row.update((k, v) for k, v in record.meta.items() if k not in OUTPUT_FIELDS)
    if record.references:
        references = record.references
        row["reference"] = references[0]  # always a string; every reference in ``references`` when several
        if len(references) > 1:
            row["references"] = list(references)
        row["rouge"] = {k: round(v, 4) for k, v in rouge.score(outcome.summary or "", references).items()}
    if outcome.truncated:
        row["truncated"] = True
    if outcome.chunks:
        row["chunks"] = outcome.chunks
    kept = {
        k: v for k, v in record.extra.items() if ("*" in keep_fields or k in keep_fields) and k not in OUTPUT_FIELDS
    }
    if "*" in keep_fields or "dialogue" in keep_fields:
        kept["dialogue"] = record.dialogue  # as built and summarized, whatever field or format it came from
    return {**row, **kept}


class ErrorSink:
    """Bad records: raised at once under ``fail``, written to the errors file (and logged) under ``skip``."""

    def __init__(
        self,
        path: str | None,
        policy: str,
        log: Log,
        stack: contextlib.ExitStack,
        append: bool,
        seen: Collection[tuple[str, int | None]] = (),
    ):
        self.policy = policy
        self.log = log
        self.seen = seen  # already in the file (Resumed.seen): a rerun with --resume does not repeat them
        self.writer = JsonlWriter(stack.enter_context(closing_output(open_output(path, append)))) if path else None

    def report(self, error: InputError) -> None:
        if self.policy == "fail":
            raise error
        self.log.warning(f"skipped {error}")
        if self.writer and (error.source, error.line) not in self.seen:
            self.writer.write(error_record(error))
            self.writer.flush()


class ResultWriter:
    """The job's outputs: each outcome written as a row, or reported as a bad record, and counted."""

    def __init__(
        self,
        records: JsonlWriter,
        errors: ErrorSink,
        keep_fields: tuple[str, ...] = (),
        progress: Callable[[Record], None] = lambda record: None,
        stats: Stats | None = None,
        names: FieldNames = FieldNames(),
    ):
        self.records = records
        self.errors = errors
        self.keep_fields = keep_fields
        self.progress = progress
        self.stats = stats or Stats()
        self.names = names
        self.missing: dict[tuple[str, str], set[str]] = {}  # (field, option) -> fields the records had instead
        self.kept_seen: set[str] = set()  # --keep-fields names some record had

    def write(self, outcomes: Iterable[Outcome]) -> None:
        """Write in the order given; under ``fail`` the first bad record raises after those before it.
        Each row is flushed as it is written: a consumer downstream sees a steady flow, a killed job resumes."""
        for outcome in outcomes:
            if outcome.error is not None:
                self.report(outcome.error)
            else:
                self._row(outcome)

    def report(self, error: InputError) -> None:
        """A bad record: counted, reported, and a missing field noted for ``check_fields``."""
        self.stats.errors += 1
        self._note_missing(error)
        self.errors.report(error)

    def check_fields(self) -> None:
        """After the input's end: a field option that matched no record at all fails (DataError, naming the
        fields found) instead of ending as zero summaries "partial"; kept fields no record had are warned of."""
        if self.missing and not self.stats.records and not self.stats.resumed:
            (name, option), found = next(iter(self.missing.items()))
            raise DataError(f"no record has field '{name}' ({option}); {fields_found(sorted(found))}")
        consumed = {self.names.text, self.names.id, self.names.reference, "dialogue", "*"}  # dialogue: as summarized
        unseen = [name for name in self.keep_fields if name not in self.kept_seen and name not in consumed]
        if unseen and (self.stats.records or self.stats.resumed):
            listed = ", ".join(f"'{name}'" for name in unseen)
            self.errors.log.warning(f"--keep-fields: no record has {listed}")

    def _note_missing(self, error: InputError) -> None:
        if isinstance(error, MissingFieldError):
            found = self.missing.setdefault((error.field, error.option), set())
            if len(found) < MISSING_FIELDS_KEPT:
                found.update(error.found[: MISSING_FIELDS_KEPT - len(found)])

    def _row(self, outcome: Outcome) -> None:
        row = summary_row(outcome.item, outcome, self.keep_fields)  # type: ignore[arg-type]
        if self.keep_fields:
            self.kept_seen.update(name for name in outcome.item.extra if name in self.keep_fields)  # type: ignore[union-attr]
        self.written(row, outcome.truncated, outcome.tokens)
        self.progress(outcome.item)  # type: ignore[arg-type]

    def written(self, row: dict[str, Any], truncated: bool, tokens: int) -> None:
        """One output row written, flushed and counted (its ROUGE too); rows made elsewhere (Ray's actors) come
        in here as well."""
        self.records.write(row)
        self.records.flush()
        self.stats.records += 1
        self.stats.truncated += truncated
        self.stats.generated_tokens += tokens
        if "rouge" in row:
            self.stats.scores.add(row["rouge"])


# Valid inside JSON strings, but line breaks to str.splitlines() and many JSONL readers: escape them so
# every output line is one line to every reader. json.dumps already escapes the ASCII controls.
LINE_BREAK_ESCAPES = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def jsonl_line(value: dict[str, Any]) -> str:
    """One strict RFC 8259 line: UTF-8 text kept readable, no NaN, no bare Unicode line breaks."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False).translate(LINE_BREAK_ESCAPES) + "\n"


class JsonlWriter:
    """Writes one JSON object per line; ``flush`` after each batch keeps a killed job resumable.

    A failed write (a full disk, EIO, a closed pipe) is a DataError naming the file: one line, exit 1.
    """

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def write(self, value: dict[str, Any]) -> None:
        line = jsonl_line(value)
        try:
            self.stream.write(line)
        except OSError as exc:
            raise write_error(self.stream, exc) from exc

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as exc:
            raise write_error(self.stream, exc) from exc


def write_error(stream: IO[str], exc: OSError) -> DialogsumError:
    name = getattr(stream, "name", "output")
    if isinstance(exc, BrokenPipeError):  # its reader is gone (head): nothing more is wanted, nothing went wrong
        return OutputClosed(f"{'stdout' if stream is sys.stdout else name} was closed by its reader: stopped")
    return DataError(f"{name}: cannot write ({exc.strerror or exc})")


@contextlib.contextmanager
def closing_output(stream: IO[str]) -> Iterator[IO[str]]:
    """Close a file output at the end; stdout is only flushed. A final write that fails is one DataError,
    unless an error is already on its way out (it is the one to report)."""
    failed = False
    try:
        yield stream
    except BaseException:
        failed = True
        raise
    finally:
        try:
            stream.flush() if stream is sys.stdout else stream.close()  # close() frees the fd even when it fails
        except OSError as exc:
            if stream is sys.stdout:
                discard_stdout()
            if not failed:
                raise write_error(stream, exc) from exc  # the last flush failing is the news


def discard_stdout() -> None:
    """Point a failed stdout (a full disk, a closed pipe) at /dev/null: Python's exit would flush the same
    bytes again and print a raw second error."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # a stand-in without a file descriptor (CliRunner); io.UnsupportedOperation
        pass


def same_file(first: str, second: str) -> bool:
    """True when both paths name one file: symlinks resolved, hard links by device and inode."""
    try:
        if os.path.realpath(first) == os.path.realpath(second):
            return True
        one, other = os.stat(first), os.stat(second)
    except (OSError, ValueError):  # one of them does not exist (yet): the paths decided
        return False
    return (one.st_dev, one.st_ino) == (other.st_dev, other.st_ino)


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
    return {
        "source": error.source,
        "line": error.line,
        "reason": error.reason,
        "raw": shorten(error.raw) if error.raw is not None else None,
    }


# What --resume needs of each line a previous run wrote: field -> (JSON types allowed, how to say them).
# The writers put these fields first, which is how a torn last line is recognised as one of ours.
OUTPUT_KEYS: dict[str, tuple[tuple[type, ...], str]] = {"id": ((str, int), "a string")}
ERROR_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "source": ((str,), "a string"),
    "line": ((int, type(None)), "an integer or null"),
}


def resume_limit(max_line_bytes: int = MAX_LINE_BYTES) -> int:
    """Longest line a resumed file may hold: an input line escaped (up to 6x for control characters) and the
    summary, for input lines of up to ``max_line_bytes`` (never less than the default)."""
    return 8 * max(max_line_bytes, MAX_LINE_BYTES)


@dataclass(frozen=True)
class Resumed:
    """What earlier runs wrote, for --resume: how often each id is in the output, and the bad records already in
    the errors file (by source and line)."""

    done: Counter[str] = field(default_factory=Counter)
    seen: set[tuple[str, int | None]] = field(default_factory=set)


def read_resumed(output: str, errors_out: str | None = None, limit: int | None = None) -> Resumed:
    """What earlier runs wrote to ``output`` and to the errors file: the one place resume state is read.

    Both files are checked whole before either changes (a torn last line is dropped only then), so a file that
    is not ours fails at once, as one line, and both are left as they were. ``limit``: the longest line a file
    may hold (``resume_limit()`` by default).
    """
    written = scan_written(output, OUTPUT_KEYS, limit)
    errors = scan_written(errors_out, ERROR_KEYS, limit) if errors_out else Written("")  # no file: nothing seen
    for checked in (written, errors):
        checked.drop_torn_line()
    return Resumed(Counter(str(key) for (key,) in written.rows), set(errors.rows))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Written:
    """A previous run's file, read whole and checked: each line's keys, and where a torn last line starts."""

    path: str
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    torn: int | None = None  # offset of a torn last line (a crash mid-write)

    def drop_torn_line(self) -> None:
        """Drop the torn last line; called once every file of the job has checked out."""
        if self.torn is None:
            return
        try:
            os.truncate(self.path, self.torn)
        except OSError as exc:
            raise DataError(f"{self.path}: cannot resume ({exc.strerror or exc})") from exc


def scan_written(path: str, keys: dict, limit: int | None = None) -> Written:
    """The ``keys`` of every line a previous run wrote to ``path``, changing nothing.

    A file that is not ours is one DataError naming its first bad line. The one defect tolerated is a torn
    last line, which ``Written.drop_torn_line`` removes.
    """
    file = Path(path)
    if not file.exists():
        return Written(path)
    if not file.is_file():  # /dev/zero reads for ever and a FIFO blocks: only a regular file is resumable
        raise DataError(f"{path}: cannot resume: not a regular file")
    try:
        with open(file, "rb") as stream:
            return Written(path, *read_written(stream, path, keys, limit or resume_limit()))
    except OSError as exc:
        raise DataError(f"{path}: cannot resume ({exc.strerror or exc})") from exc


def read_written(stream: IO[bytes], path: str, keys: dict, limit: int) -> tuple[list[tuple[Any, ...]], int | None]:
    """Each whole line's keys, and the offset of a torn last line (None when the file ends with a newline)."""
    rows: list[tuple[Any, ...]] = []
    offset = 0
    for number, raw in enumerate(capped_lines(stream, limit), start=1):
        if isinstance(raw, int):  # read past, never held: a file of endless lines is not ours
            raise not_ours(path, number, f"a line over the {limit:,}-byte limit")
        if not raw.endswith(b"\n"):
            if torn_like(raw, keys):
                return rows, offset
            raise not_ours(path, number, "the last line is torn and does not start like ours")
        if raw.strip(JSON_BLANKS):
            rows.append(row_keys(parse_written(raw, path, number), keys, path, number))
        offset += len(raw)
    return rows, None


JSON_BLANKS = b" \t\r\n"


def parse_written(raw: bytes, path: str, number: int) -> Any:
    """One line as JSON, or a DataError naming the line: never a raw decoder, recursion or digit-limit error."""
    try:
        return loads_json_limited(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        reason = f"invalid UTF-8 at byte {exc.start}"
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON ({exc.msg})"
    except JsonLimitError:  # nested thousands deep, or an integer past Python's digit limit
        reason = "JSON nested too deeply or with a number too long to read"
    raise not_ours(path, number, reason)


def row_keys(row: Any, keys: dict, path: str, number: int) -> tuple[Any, ...]:
    """The values of ``keys`` in a parsed line, each of an allowed type (bool is not an integer here)."""
    if not isinstance(row, dict):
        raise not_ours(path, number, f"expected a JSON object, got {json_type(row)}")
    for name, (types, described) in keys.items():
        if name not in row:
            raise not_ours(path, number, f"no field '{name}'")
        if isinstance(row[name], bool) or not isinstance(row[name], types):
            raise not_ours(path, number, f"field '{name}' must be {described}, got {json_type(row[name])}")
    return tuple(row[name] for name in keys)


def torn_like(tail: bytes, keys: dict) -> bool:
    """Whether a last line without its newline is one of ours, torn: it starts as our writers start a line
    (``{"id": ``), or it is the zeros a filesystem can leave at the end of a file after a power cut."""
    start = f'{{"{next(iter(keys))}": '.encode()
    return tail[: len(start)] == start[: len(tail)] or not tail.strip(b"\0")


def not_ours(path: str, number: int, reason: str) -> DataError:
    return DataError(f"{path}:{number}: cannot resume: {reason}; not a dialogsum-batch output? (left unchanged)")


LOCK_TRIES = 20  # a lock file removed by its holder as we opened it: open the new one, this many times


class OutputLock:
    """An exclusive ``flock`` beside the output, so two runs never interleave on one file.

    The file is removed when the run ends, however it ends (short of SIGKILL: the next run takes the flock
    of the stale file). Removal happens while the flock is held, and a run that locked a file which is no
    longer at the path tries again, so two runs can never each hold a lock of their own.
    """

    def __init__(self, path: str):
        self.path = path
        self.stream: IO[str] | None = None
        self.held = contextlib.ExitStack()

    def __enter__(self) -> OutputLock:
        for _ in range(LOCK_TRIES):
            self.stream = self._lock()
            if self.stream is None:
                self.held.close()
                raise LockedError(
                    f"{self.path} is held by {self._holder() or 'another process'}: "
                    "another run is writing the same output"
                )
            if self._still_ours():
                self._note_pid(self.stream)
                return self
            self.held.close()  # the holder removed it after we opened it: lock the file now at the path
        raise DataError(f"{self.path}: cannot take the lock: the file keeps being replaced")

    def __exit__(self, *exc: object) -> None:
        if self.stream is None:
            return
        with contextlib.suppress(OSError):
            if self._still_ours():
                os.unlink(self.path)
        with contextlib.suppress(OSError):  # a pid line that never reached a full disk fails again here
            self.held.close()  # closing releases the flock
        self.stream = None

    def _lock(self) -> IO[str] | None:
        """The lock file, held (kept open in ``self.held``), or None when another run holds it."""
        try:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            return self.held.enter_context(exclusive_lock(self.path, wait=False))
        except OSError as exc:
            raise DataError(f"{self.path}: cannot create the lock ({exc.strerror or exc})") from exc

    def _holder(self) -> str:
        """The pid line the holder wrote, for the message only ("" when unreadable or already gone)."""
        try:
            with open(self.path, encoding="utf-8") as stream:
                return stream.read(200).strip()
        except (OSError, UnicodeDecodeError):
            return ""

    def _still_ours(self) -> bool:
        """Whether the path still names the file we hold open."""
        try:
            here, held = os.stat(self.path), os.fstat(self.stream.fileno())  # type: ignore[union-attr]
        except OSError:
            return False
        return (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)

    @staticmethod
    def _note_pid(stream: IO[str]) -> None:
        try:
            stream.truncate(0)
            stream.write(f"pid {os.getpid()}\n")
            stream.flush()
        except OSError:
            pass  # the pid only names the holder in a second run's message; the flock is what locks
