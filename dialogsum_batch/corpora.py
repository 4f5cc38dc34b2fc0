"""Load dialogue-summarization corpora into one shape: a DatasetDict of id / dialogue / summary.

Sources understood by :func:`load_corpus`:

* SAMSum's original ``corpus.7z`` (train.json, val.json, test.json), a path or an http(s) URL
  (downloaded once into the cache folder);
* a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``;
* CSV, JSON (a list of objects, or JSON Lines), JSONL and Parquet files: one path, a mapping
  ``split -> path``, or a folder whose files are named by split (``train.csv``,
  ``dialogsum.dev.jsonl``, ``test-00000-of-00001.parquet``);
* a Hugging Face Hub dataset id, checked for reachability first so an offline machine fails
  in seconds. ``Samsung/samsum`` (gone from the Hub since 2025) is redirected to a mirror.

DialogSum's layout (``fname``, ``summary1..3``) is recognised by itself; ``columns`` maps other
layouts. Split names ``val`` / ``valid`` / ``dev`` become ``validation``.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import glob
import hashlib
import http.client
import json
import logging
import os
import re
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Union
from urllib.parse import urlparse

import datasets

from dialogsum_batch.config import downloads_dir
from dialogsum_batch.errors import ConfigError, DataError, first_line
from dialogsum_batch.files import (
    JsonLimitError,
    Sha256Counter,
    capped_lines,
    csv_field_limit,
    decode_json_limited,
    exclusive_lock,
    loads_json_limited,
    publish_file,
    sha256_file,
)
from dialogsum_batch.hub import KNOWN_DOWNLOADS, SAMSUM_CORPUS_URL, hub_unreachable, is_hub_id, resolve_hub_id
from dialogsum_batch.logs import Say, library_bars
from dialogsum_batch.text import normalise

__all__ = [
    "DEFAULT_MAX_EXTRACT_BYTES",
    "DEFAULT_MAX_MEMBER_BYTES",
    "ExtractLimits",
    "canonical_split",
    "load_corpus",
    "split_from_filename",
]

logger = logging.getLogger(__name__)

LogTarget = Say | logging.Logger | None  # where load_corpus reports: a callable, a Logger, or this module's logger
PathLike = Union[str, "os.PathLike[str]"]


SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "dev": "validation",
    "test": "test",
    "testing": "test",
}
SPLIT_ORDER = ("train", "validation", "test")
FIELDS = ("id", "dialogue", "summary")
DISK_MARKERS = ("dataset_dict.json", "dataset_info.json", "state.json")
DOWNLOAD_TIMEOUT_S = 60.0

# How far one archive may expand. SAMSum's corpus.7z expands to about 12 MB: the defaults leave room for
# corpora forty times larger, and stop a small hostile archive before it fills the disk or memory.
DEFAULT_MAX_EXTRACT_BYTES = 1 << 30  # all members together
DEFAULT_MAX_MEMBER_BYTES = 512 << 20  # any one member
MAX_EXTRACT_ENV = "DIALOGSUM_MAX_EXTRACT_BYTES"
MAX_MEMBER_ENV = "DIALOGSUM_MAX_MEMBER_BYTES"
EXTRACT_STEP_BYTES = 8 << 20  # py7zr decompresses up to 128 MB per step unless told otherwise
# One JSON Lines / CSV line or one item of a JSON list may hold this much (as records.MAX_LINE_BYTES):
# a dialogue is a few KB, and a file of one endless line must not be read into memory whole.
MAX_RECORD_BYTES = 16 << 20
JSON_WINDOW_CHARS = 1 << 20  # a JSON list is decoded item by item from a window about this large
JSON_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's own whitespace; U+3000, \x1c and the like are not


@dataclass(frozen=True)
class _Table:
    """Rows read from one file (or one split of a saved dataset), before normalisation."""

    label: str  # how messages name it: "train.csv", "corpus.7z/val.json"
    columns: tuple[str, ...]
    rows: list[dict[str, Any]]
    blank: int = 0  # blank JSON Lines lines skipped, reported so every line is accounted for


@dataclass(frozen=True)
class ExtractLimits:
    """How many bytes one archive may expand to: checked from its listing, then while extracting."""

    total_bytes: int = DEFAULT_MAX_EXTRACT_BYTES  # every member together; 1 MB .. tens of GB
    member_bytes: int = DEFAULT_MAX_MEMBER_BYTES  # any one member; above total_bytes it never binds


@dataclass(frozen=True)
class _Source:
    """Tables grouped by split; ``single`` when the split name was only a guess."""

    splits: dict[str, list[_Table]]
    single: bool = False


@dataclass(frozen=True)
class _Fields:
    """Which source column feeds each output field of one table."""

    dialogue: str
    id: str | None = None
    summary: str | None = None
    references: tuple[str, ...] = field(default_factory=tuple)  # summary1..N, or "references"


# ---------------------------------------------------------------- public helpers


def canonical_split(name: str) -> str:
    """Map split aliases (val, valid, dev, training ...) to train / validation / test."""
    return SPLIT_ALIASES.get(name.strip().lower(), name.strip())


def split_from_filename(name: str) -> str | None:
    """The split a file name announces (``dialogsum.dev.jsonl`` -> validation), or None."""
    for token in re.split(r"[^a-z]+", Path(name).stem.lower()):
        if token in SPLIT_ALIASES:
            return SPLIT_ALIASES[token]
    return None


def load_corpus(
    source: PathLike | Mapping[str, PathLike],
    *,
    splits: str | Sequence[str] | None = None,
    columns: Mapping[str, str] | None = None,
    cache_dir: PathLike | None = None,
    log: LogTarget = None,
    max_extract_bytes: int | None = None,
    max_member_bytes: int | None = None,
) -> datasets.DatasetDict:
    """Load a corpus as a DatasetDict with ``id``, ``dialogue``, ``summary`` (and ``references``).

    ``splits`` keeps only the named splits (aliases allowed) and raises DataError if one is
    missing. A single-split source (one file whose name names no split, or a saved single
    Dataset) is called ``train``; when ``splits`` names exactly one split, a single-split source
    takes that name instead. ``columns`` maps output fields to source columns, e.g.
    ``{"dialogue": "chat", "summary": "abstract", "id": "uid"}``. ``log`` is a callable taking
    one line, or a logging.Logger; dropped empty records are reported there, one line a split.
    ``max_extract_bytes`` / ``max_member_bytes`` cap how far a 7z archive may expand, in all and per
    member (default: $DIALOGSUM_MAX_EXTRACT_BYTES / $DIALOGSUM_MAX_MEMBER_BYTES, else 1 GiB / 512 MiB);
    an archive past a cap is a DataError naming the file and the cap, before it fills disk or memory.
    """
    mapping = _check_columns(columns)
    limits = _extract_limits(max_extract_bytes, max_member_bytes)
    emit = _emitter(log)
    cache = Path(os.path.expanduser(str(cache_dir))) if cache_dir else downloads_dir()
    source_tables = _read_source(source, cache, emit, limits)
    chosen = _choose_splits(source_tables, _wanted_splits(splits), _describe(source))
    built = {name: _build_split(name, tables, mapping, emit) for name, tables in chosen.items()}
    return datasets.DatasetDict({name: built[name] for name in _ordered(built)})


# ---------------------------------------------------------------- dispatch


def _read_source(source: PathLike | Mapping[str, PathLike], cache: Path, emit: Say, limits: ExtractLimits) -> _Source:
    """Read any supported source into tables grouped by split."""
    if isinstance(source, Mapping):
        return _read_mapping(source, cache, emit)
    text = os.fspath(source)
    if _is_url(text):
        return _read_path(_download(text, cache, emit), limits)
    path = Path(text).expanduser()
    if path.exists():
        return _read_path(path, limits)
    if is_hub_id(text) and path.suffix.lower() not in _READERS and path.suffix.lower() != ".7z":
        return _read_hub(text, emit)
    raise DataError(f"{text}: no such file or folder")


def _read_path(path: Path, limits: ExtractLimits) -> _Source:
    """Read a local archive, folder or data file."""
    if path.is_dir():
        return _read_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".7z":
        return _read_archive(path, limits)
    if suffix in _READERS:
        split = split_from_filename(path.name)
        return _Source({split or "train": [_read_file(path, path.name)]}, single=True)
    raise DataError(
        f"{path.name}: unsupported corpus format '{suffix or path.name}' "
        "(expected .7z, .csv, .json, .jsonl, .parquet or a save_to_disk folder)"
    )


def _read_mapping(source: Mapping[str, PathLike], cache: Path, emit: Say) -> _Source:
    """Read a ``split -> file`` mapping; each value is a local path or a URL."""
    grouped: dict[str, list[_Table]] = {}
    for split, where in source.items():
        text = os.fspath(where)
        path = _download(text, cache, emit) if _is_url(text) else Path(text).expanduser()
        if not path.is_file():
            raise DataError(f"{text}: no such file (given for split '{split}')")
        if path.suffix.lower() not in _READERS:
            raise DataError(
                f"{path.name}: unsupported format '{path.suffix}' (expected .csv, .json, .jsonl or .parquet)"
            )
        grouped.setdefault(canonical_split(split), []).append(_read_file(path, path.name))
    if not grouped:
        raise DataError("empty split -> file mapping: name at least one file")
    return _Source(grouped)


def _read_folder(path: Path) -> _Source:
    """A save_to_disk folder, or a folder of data files named by split."""
    if any((path / marker).is_file() for marker in DISK_MARKERS):
        return _read_saved(path)
    files = _data_files(path)
    if not files:
        raise DataError(f"{path}: no save_to_disk dataset and no .csv/.json/.jsonl/.parquet files in it")
    if len(files) == 1 and split_from_filename(files[0].name) is None:
        return _Source({"train": [_read_file(files[0], files[0].name)]}, single=True)
    return _Source(_group_by_split(files, path, path.name))


def _group_by_split(files: list[Path], root: Path, label: str) -> dict[str, list[_Table]]:
    """Group data files by the split their names announce; every file must announce one."""
    unnamed = [f.relative_to(root).as_posix() for f in files if split_from_filename(f.name) is None]
    if unnamed:
        raise DataError(
            f"{label}: cannot tell the split of {', '.join(unnamed)}; "
            "name files by split (train/val/test) or pass a split -> file mapping"
        )
    grouped: dict[str, list[_Table]] = {}
    for file in files:
        split = split_from_filename(file.name) or "train"  # never None here: checked above
        grouped.setdefault(split, []).append(_read_file(file, f"{label}/{file.relative_to(root).as_posix()}"))
    return grouped


def _data_files(root: Path) -> list[Path]:
    """Readable data files under ``root`` (recursively, hidden folders skipped), sorted."""
    found = []
    for file in sorted(root.rglob("*")):
        hidden = any(part.startswith(".") for part in file.relative_to(root).parts)
        if file.is_file() and not hidden and file.suffix.lower() in _READERS:
            found.append(file)
    return found


# ---------------------------------------------------------------- archives, downloads, disk


def _read_archive(path: Path, limits: ExtractLimits) -> _Source:
    """Extract the data files of a 7z archive (SAMSum's corpus.7z) within the caps, and read them by split."""
    with tempfile.TemporaryDirectory(prefix="dialogsum-7z-") as tmp:
        folder = Path(tmp)
        _extract_capped(path, folder, limits)
        return _Source(_group_by_split(_data_files(folder), folder, path.name))


def _extract_capped(path: Path, folder: Path, limits: ExtractLimits) -> None:
    """Extract the archive's data files into ``folder``; every failure is one DataError naming the file."""
    import py7zr  # imported here: only archives need it

    factory = _CappedFactory(folder, path.name, limits)
    try:
        # max_extract_size: py7zr's own running total, which also counts members it only decompresses
        # to check a CRC; the factory counts what is written, per member and in all
        with py7zr.SevenZipFile(path, mode="r", max_extract_size=limits.total_bytes) as archive:
            targets = _archive_targets(archive, path.name, limits)
            with _small_decompression_steps():
                archive.extract(path=folder, targets=targets, factory=factory)
    except DataError:
        raise
    except py7zr.exceptions.PasswordRequired as exc:
        raise _password_error(path.name) from exc
    except py7zr.exceptions.DecompressionBombError as exc:
        raise _cap_error(path.name, "the archive expands past its listing while extracting", limits, "total") from exc
    except Exception as exc:
        # py7zr lets hostile bytes surface as whatever its parsers raise: LZMAError, zlib and bz2 errors,
        # struct.error, KeyError, IndexError, ValueError, EOFError ... each means "not a readable archive"
        raise DataError(f"{path.name}: not a readable 7z archive ({type(exc).__name__}: {first_line(exc)})") from exc
    finally:
        factory.close_all()


def _archive_targets(archive: Any, label: str, limits: ExtractLimits) -> list[str]:
    """The data members to extract, once the listing passed the caps and no password is needed."""
    if archive.needs_password():
        raise _password_error(label)
    infos = archive.list()
    names = [info.filename for info in infos if not info.is_directory]
    wanted = [n for n in names if Path(n).suffix.lower() in _READERS]
    if not any(split_from_filename(n) for n in wanted):
        shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "") or "nothing"
        raise DataError(f"{label}: expected train.json, val.json, test.json; the archive has {shown}")
    _check_listing(infos, label, limits)
    return wanted


def _check_listing(infos: Sequence[Any], label: str, limits: ExtractLimits) -> None:
    """Refuse before extracting anything when the archive's own listing passes a cap."""
    # every member counts, wanted or not: py7zr decompresses the others of a solid block to check CRCs
    sizes = [(info.filename, info.uncompressed or 0) for info in infos]
    for name, size in sizes:
        if size > limits.member_bytes:
            raise _cap_error(label, f"{name} expands to {size:,} bytes", limits, "per-member")
    total = sum(size for _, size in sizes)
    if total > limits.total_bytes:
        raise _cap_error(label, f"the archive expands to {total:,} bytes", limits, "total")


def _cap_error(label: str, what: str, limits: ExtractLimits, kind: str) -> DataError:
    """One line naming the archive, what passed which cap, and how to raise it."""
    if kind == "per-member":
        cap, setting = limits.member_bytes, f"max_member_bytes= or {MAX_MEMBER_ENV}"
    else:
        cap, setting = limits.total_bytes, f"max_extract_bytes= or {MAX_EXTRACT_ENV}"
    return DataError(f"{label}: {what}, over the {cap:,}-byte {kind} extraction cap (raise it with {setting})")


def _password_error(label: str) -> DataError:
    return DataError(f"{label}: the archive is password-protected; extract it yourself and pass the folder")


class _CappedWriter:
    """One archive member streamed to a file; passing its cap or the archive's stops the extraction.

    Duck-types py7zr's ``Py7zIO`` (write / read / seek / flush / size / close), so py7zr need not be
    imported with this module.
    """

    def __init__(self, path: Path, member: str, factory: _CappedFactory):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = path.open("wb")
        self.member, self.factory, self.written = member, factory, 0

    def write(self, data: bytes | bytearray) -> int:
        # the listing was checked already; count what really comes out, in case a header lied
        self.written += len(data)
        self.factory.spend(self.member, self.written, len(data))
        return self.handle.write(data)

    def read(self, size: int | None = None) -> bytes:
        return b""  # py7zr reads back only what its in-memory writers hold

    def seek(self, offset: int, whence: int = 0) -> int:
        return self.handle.seek(offset, whence)

    def flush(self) -> None:
        self.handle.flush()

    def size(self) -> int:
        return self.written

    def close(self) -> None:
        self.handle.close()


class _CappedFactory:
    """py7zr writer factory: members become files under ``folder``, within the per-member and total caps."""

    def __init__(self, folder: Path, label: str, limits: ExtractLimits):
        self.folder, self.label, self.limits = folder.resolve(), label, limits
        self.total = 0
        self.lock = threading.Lock()  # py7zr extracts the solid blocks of one archive in threads
        self.writers: list[_CappedWriter] = []

    def create(self, filename: str) -> _CappedWriter:
        path = Path(filename).resolve()
        if not path.is_relative_to(self.folder):  # py7zr sanitises member names too; never rely on one layer
            raise DataError(f"{self.label}: member {filename!r} would be written outside the extraction folder")
        writer = _CappedWriter(path, path.relative_to(self.folder).as_posix(), self)
        self.writers.append(writer)
        return writer

    def spend(self, member: str, member_total: int, count: int) -> None:
        with self.lock:
            self.total += count
            total = self.total
        if member_total > self.limits.member_bytes:
            raise _cap_error(
                self.label, f"{member} expands past its listing while extracting", self.limits, "per-member"
            )
        if total > self.limits.total_bytes:
            raise _cap_error(self.label, "the archive expands past its listing while extracting", self.limits, "total")

    def close_all(self) -> None:
        # py7zr closes a member only when it was written without error; close the rest here
        for writer in self.writers:
            writer.close()


_PY7ZR_STEP_LOCK = threading.Lock()


@contextlib.contextmanager
def _small_decompression_steps() -> Iterator[None]:
    """Make py7zr decompress in steps of at most EXTRACT_STEP_BYTES rather than up to 128 MB.

    py7zr 1.1 sizes each step with its module-level ``get_memory_limit()`` and takes no argument for it:
    without this, a member of a few hundred MB costs a few hundred MB of memory, whatever the caps.
    """
    import py7zr.py7zr as core

    original = getattr(core, "get_memory_limit", None)
    if original is None:  # another py7zr: the caps still hold, only the steps may be larger
        yield
        return
    with _PY7ZR_STEP_LOCK:  # the patch is process-wide: one extraction at a time changes it
        core.get_memory_limit = lambda: min(original(), EXTRACT_STEP_BYTES)
        try:
            yield
        finally:
            core.get_memory_limit = original


def _extract_limits(total: int | None, member: int | None) -> ExtractLimits:
    """Extraction caps from the arguments, else the environment, else the defaults."""
    return ExtractLimits(
        total_bytes=_byte_cap("max_extract_bytes", total, MAX_EXTRACT_ENV, DEFAULT_MAX_EXTRACT_BYTES),
        member_bytes=_byte_cap("max_member_bytes", member, MAX_MEMBER_ENV, DEFAULT_MAX_MEMBER_BYTES),
    )


def _byte_cap(name: str, given: int | None, variable: str, default: int) -> int:
    """A positive byte count from an argument or an env var; anything else is a ConfigError."""
    if given is None:
        text = os.environ.get(variable, "").strip()
        if not text:
            return default
        try:
            given, name = int(text), variable
        except ValueError:
            raise ConfigError(f"{variable}={text!r}: expected a number of bytes") from None
    if isinstance(given, bool) or not isinstance(given, int) or given <= 0:
        raise ConfigError(f"{name}: expected a positive number of bytes, got {given!r}")
    return given


def _download(url: str, cache: Path, emit: Say) -> Path:
    """Fetch ``url`` into the cache once, complete and verified; later calls reuse the file."""
    name = Path(urlparse(url).path).name or "download"
    target = cache / hashlib.sha256(url.encode()).hexdigest()[:16] / name
    if _cached(url, target):
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"{target.parent}: cannot create the download cache ({first_line(exc)})") from exc
    with contextlib.ExitStack() as held:  # one process fetches a URL, the others wait, then reuse it
        try:
            held.enter_context(exclusive_lock(target.with_name(target.name + ".lock"), wait=True))
        except OSError as exc:
            raise DataError(f"{target.parent}: cannot write to the download cache ({first_line(exc)})") from exc
        if not _cached(url, target):  # another process may have published it while this one waited
            emit(f"downloading {url} to {target}")
            _fetch(url, target)
    return target


def _cached(url: str, target: Path) -> bool:
    """Whether ``target`` holds a complete copy of ``url``: checked against its digest when known."""
    if not target.is_file():
        return False
    known = KNOWN_DOWNLOADS.get(url)
    # a copy cached before downloads were verified may be short: a known file is re-checked on each use
    return known is None or sha256_file(target) == known


def _fetch(url: str, target: Path) -> None:
    """Download into a file beside ``target``, published by atomic rename once verified (whole on disk)."""
    try:
        with publish_file(target, "wb", durable=True) as handle:
            size, digest, declared = _copy_body(url, handle)
            _verify_download(url, size, digest, declared)
    except OSError as exc:  # creating, syncing or renaming the file; the transfer's own errors are DataErrors
        raise DataError(f"{target.parent}: cannot write to the download cache ({first_line(exc)})") from exc


def _copy_body(url: str, out: IO[bytes]) -> tuple[int, str, int | None]:
    """Copy the body of ``url`` to ``out``: bytes received, their sha256, the announced Content-Length."""
    counted = Sha256Counter()
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            declared = _content_length(response.headers.get("Content-Length"))
            # read(n) returns short when the server closes early, without IncompleteRead: count the bytes
            while chunk := response.read(1 << 20):
                out.write(chunk)
                counted.update(chunk)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise DataError(f"{url}: download failed ({first_line(reason)})") from exc
    return counted.size, counted.hexdigest(), declared


def _content_length(text: str | None) -> int | None:
    """The Content-Length header as a number, or None when absent or malformed."""
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _verify_download(url: str, size: int, digest: str, declared: int | None) -> None:
    """A body shorter than announced, or unlike the known file, is never cached."""
    if declared is not None and size != declared:
        raise DataError(f"{url}: download incomplete ({size:,} of {declared:,} bytes); nothing cached, try again")
    known = KNOWN_DOWNLOADS.get(url)
    if known is not None and (size, digest) != known:
        raise DataError(
            f"{url}: download does not match the known file ({size:,} bytes, sha256 {digest[:16]}...; expected "
            f"{known[0]:,} bytes, sha256 {known[1][:16]}...); nothing cached"
        )


def _read_saved(path: Path) -> _Source:
    """A folder written by ``save_to_disk``: a DatasetDict, or one Dataset (a single split)."""
    try:
        loaded = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise DataError(f"{path}: cannot load the saved dataset ({first_line(exc)})") from exc
    if isinstance(loaded, datasets.DatasetDict):
        grouped = {canonical_split(s): [_dataset_table(d, f"{path.name}[{s}]")] for s, d in loaded.items()}
        return _Source(grouped)
    return _Source({"train": [_dataset_table(loaded, path.name)]}, single=True)


def _dataset_table(dataset: datasets.Dataset, label: str) -> _Table:
    """Rows of a loaded Dataset as a table."""
    return _Table(label, tuple(dataset.column_names), dataset.to_list())


# ---------------------------------------------------------------- the Hub


def _read_hub(name: str, emit: Say) -> _Source:
    """Load a Hub dataset id, failing within seconds when the Hub is out of reach."""
    target = resolve_hub_id(name)
    if target != name:
        emit(
            f"{name} is no longer on the Hugging Face Hub; loading the mirror {target} (original: {SAMSUM_CORPUS_URL})"
        )
    offline_reason = hub_unreachable()
    if offline_reason and not _hub_cached(target):
        raise DataError(
            f"{target}: not a local path, and the Hugging Face Hub is out of reach ({offline_reason}) with no cached "
            f"copy; pass a local corpus instead (corpus.7z from {SAMSUM_CORPUS_URL}, or a CSV/JSON/Parquet file)"
        )
    emit(f"loading {target} from the Hugging Face Hub" + (" cache" if offline_reason else ""))
    try:
        with _forced_offline(bool(offline_reason)), library_bars():  # no download bars under cron or CI
            loaded = datasets.load_dataset(target)
    except (FileNotFoundError, ConnectionError, ValueError, OSError) as exc:
        raise DataError(f"{target}: cannot load from the Hugging Face Hub ({first_line(exc)})") from exc
    if not isinstance(loaded, datasets.DatasetDict):
        return _Source({"train": [_dataset_table(loaded, target)]}, single=True)
    return _Source({canonical_split(s): [_dataset_table(d, f"{target}[{s}]")] for s, d in loaded.items()})


def _hub_cached(name: str) -> bool:
    """Whether ``datasets`` holds a prepared copy of ``name`` it can load offline."""
    from datasets.naming import camelcase_to_snakecase

    parts = name.split("/")
    parts[-1] = camelcase_to_snakecase(parts[-1])
    root = os.path.join(os.path.expanduser(str(datasets.config.HF_DATASETS_CACHE)), "___".join(parts))
    return any(os.path.isdir(p) for p in glob.glob(os.path.join(root, "*", "*", "*")))


@contextlib.contextmanager
def _forced_offline(enabled: bool) -> Iterator[None]:
    """Make datasets / huggingface_hub skip the network (they read the env var only at import)."""
    if not enabled:
        yield
        return
    import huggingface_hub.constants as hub_constants

    saved = (datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, hub_constants.HF_HUB_OFFLINE = saved


# ---------------------------------------------------------------- file readers


def _read_file(path: Path, label: str) -> _Table:
    """Read one data file with the reader its suffix names."""
    try:
        return _READERS[path.suffix.lower()](path, label)
    except UnicodeDecodeError as exc:
        raise DataError(f"{label}: not UTF-8 text (byte {exc.start}: {exc.reason})") from exc


def _read_csv(path: Path, label: str) -> _Table:
    """A CSV file with a header row; quoted fields may span lines."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(_capped_text_lines(handle, label))
        try:
            with csv_field_limit(MAX_RECORD_BYTES):  # a cell may span lines, up to a record's cap
                rows = [dict(row) for row in reader]
        except csv.Error as exc:
            raise DataError(f"{label}:{reader.line_num}: bad CSV ({exc})") from exc
        return _Table(label, tuple(reader.fieldnames or ()), rows)


def _capped_text_lines(handle: IO[str], label: str) -> Iterator[str]:
    """The lines of a text file, refusing one longer than MAX_RECORD_BYTES characters before holding it."""
    for number, line in enumerate(capped_lines(handle, MAX_RECORD_BYTES), start=1):
        if isinstance(line, int):
            raise DataError(f"{label}:{number}: line longer than {MAX_RECORD_BYTES:,} characters")
        yield line


def _read_json(path: Path, label: str) -> _Table:
    """A JSON list of objects, decoded item by item; a file not starting with '[' is read as JSON Lines."""
    if _first_byte(path) != b"[":
        return _read_jsonl(path, label)
    records = []
    with path.open("rb") as handle:
        for number, record in enumerate(_JsonListReader(handle, label).items(), start=1):
            if not isinstance(record, dict):
                raise DataError(f"{label}: record {number} is a {type(record).__name__}, not a JSON object")
            records.append(record)
    return _table_from_objects(label, records)


def _first_byte(path: Path) -> bytes:
    """The first byte after a UTF-8 BOM and JSON whitespace (b'' for a blank file)."""
    with path.open("rb") as handle:
        if handle.read(3) != codecs.BOM_UTF8:
            handle.seek(0)
        while chunk := handle.read(1 << 16):
            rest = chunk.lstrip(b" \t\r\n")
            if rest:
                return rest[:1]
    return b""


def _read_jsonl(path: Path, label: str) -> _Table:
    """A JSON Lines file: one object a line; blank lines are counted, not kept."""
    records: list[dict[str, Any]] = []
    blank = 0
    with path.open("rb") as handle:
        # binary lines end only at b"\n": str.splitlines would also cut strings at U+2028, U+0085, \x1c ...
        for number, raw in enumerate(capped_lines(handle, MAX_RECORD_BYTES), start=1):  # one record's worth
            record = _parse_json_line(raw, number, label)
            if record is None:
                blank += 1
            else:
                records.append(record)
    return _table_from_objects(label, records, blank)


def _parse_json_line(raw: bytes | int, number: int, label: str) -> dict[str, Any] | None:
    """One JSON Lines line as an object, None when blank; anything else is a DataError naming the line."""
    if isinstance(raw, int):  # read past, never held
        raise DataError(f"{label}:{number}: line longer than {MAX_RECORD_BYTES:,} bytes (a corpus record is a few KB)")
    if number == 1 and raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{label}:{number}: not UTF-8 text (byte {exc.start + 1} of the line: {exc.reason})") from exc
    if not text.strip(" \t\r\n"):  # JSON's whitespace only: a line of U+3000 or \x1c is bad JSON, not blank
        return None
    try:
        record = loads_json_limited(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{label}:{number}: invalid JSON ({exc.msg}, column {exc.colno})") from exc
    except JsonLimitError as exc:  # valid JSON Python refuses: deep nesting, 4,300+ digits
        raise DataError(f"{label}:{number}: JSON that Python cannot read ({first_line(exc)})") from exc
    if not isinstance(record, dict):
        raise DataError(f"{label}:{number}: a {type(record).__name__}, not a JSON object")
    return record


class _JsonListReader:
    """The items of a top-level JSON list, decoded one at a time from a window over the file.

    ``json.load`` reads the whole text and then builds the list, holding both at once; this holds the
    items decoded so far plus a window of about JSON_WINDOW_CHARS (more only while one item is larger).
    """

    def __init__(self, handle: IO[bytes], label: str):
        self.handle, self.label = handle, label
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.text, self.pos, self.eof, self.bytes_read = "", 0, False, 0
        self.lines_before, self.column_before = 0, 0  # where text[0] sits in the file, for messages

    def items(self) -> Iterator[Any]:
        """Each item of the list; anything after the closing bracket is an error."""
        self._peek()
        self.pos += 1  # the "[" that _first_byte saw
        if self._peek() == "]":
            self.pos += 1
        else:
            while True:
                yield self._value()
                separator = self._peek()
                if separator not in (",", "]"):
                    raise self._error(self.pos, "invalid JSON (Expecting ',' delimiter)")
                self.pos += 1
                if separator == "]":
                    break
        if self._peek():
            raise self._error(self.pos, "invalid JSON (Extra data)")

    def _value(self) -> Any:
        """Decode the next value, widening the window until the value fits in it."""
        self._peek()
        while True:
            try:
                value, end = decode_json_limited(self.text, self.pos)
            except json.JSONDecodeError as exc:
                if _cut_short(exc, len(self.text)) and self._widen():
                    continue  # the value only runs past the window
                raise self._error(exc.pos, f"invalid JSON ({exc.msg})") from exc
            except JsonLimitError as exc:  # valid JSON Python refuses: deep nesting, 4,300+ digits
                raise self._error(self.pos, f"JSON that Python cannot read ({first_line(exc)})") from exc
            if end < len(self.text) or not self._widen():  # a number at the window's edge may go on
                self.pos = end
                return value

    def _widen(self) -> bool:
        """Read on for the value at ``pos``; one past MAX_RECORD_BYTES is an error rather than held."""
        if len(self.text) - self.pos > MAX_RECORD_BYTES:
            raise self._error(self.pos, f"a record longer than {MAX_RECORD_BYTES:,} characters, or one that never ends")
        return self._fill()

    def _peek(self) -> str:
        """The next character that is not JSON whitespace ('' at the end), reading on as needed."""
        while True:
            self.pos = JSON_SPACE.match(self.text, self.pos).end()
            if self.pos < len(self.text) or not self._fill():
                return self.text[self.pos : self.pos + 1]

    def _fill(self) -> bool:
        """Append the next chunk, dropping what was consumed; False once the file is exhausted."""
        if self.eof:
            return False
        # the read size grows with the window, so an item larger than a chunk is read in linear time
        chunk = self.handle.read(max(JSON_WINDOW_CHARS, len(self.text) - self.pos))
        self.eof = not chunk
        try:
            new = self.decoder.decode(chunk, final=self.eof)
        except UnicodeDecodeError as exc:
            raise DataError(
                f"{self.label}: not UTF-8 text (near byte {self.bytes_read + exc.start}: {exc.reason})"
            ) from exc
        self.bytes_read += len(chunk)
        if new:
            self._drop_consumed()
            self.text += new
        return bool(chunk)

    def _drop_consumed(self) -> None:
        """Forget the text before ``pos``, keeping the line and column it ended at."""
        done = self.text[: self.pos]
        newlines = done.count("\n")
        if newlines:
            self.lines_before += newlines
            self.column_before = len(done) - done.rfind("\n") - 1
        else:
            self.column_before += len(done)
        self.text, self.pos = self.text[self.pos :], 0

    def _error(self, pos: int, reason: str) -> DataError:
        """A DataError naming the file, line and column of window position ``pos``."""
        before = self.text[:pos]
        newlines = before.count("\n")
        column = pos - before.rfind("\n") if newlines else self.column_before + pos + 1
        return DataError(f"{self.label}:{self.lines_before + newlines + 1}:{column}: {reason}")


def _cut_short(error: json.JSONDecodeError, window: int) -> bool:
    """Whether a decode error may come from the window ending mid-value rather than from bad JSON."""
    # a cut value fails at the window's end, inside a literal cut short (-Infinity: 9 characters) or an
    # escape (\uXXXX), or as a string still open; any other error is bad JSON wherever the window ends
    return error.pos >= window - 16 or error.msg.startswith("Unterminated string")


def _read_parquet(path: Path, label: str) -> _Table:
    """A Parquet file."""
    import pyarrow
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pyarrow.ArrowException, OSError) as exc:
        raise DataError(f"{label}: not a readable Parquet file ({first_line(exc)})") from exc
    return _Table(label, tuple(table.column_names), table.to_pylist())


def _table_from_objects(label: str, records: list[dict[str, Any]], blank: int = 0) -> _Table:
    """A table whose columns are every key seen, in first-seen order."""
    columns = dict.fromkeys(key for record in records for key in record)
    return _Table(label, tuple(columns), records, blank)


_READERS: dict[str, Callable[[Path, str], _Table]] = {
    ".csv": _read_csv,
    ".json": _read_json,
    ".jsonl": _read_jsonl,
    ".parquet": _read_parquet,
}


# ---------------------------------------------------------------- normalisation


def _build_split(split: str, tables: list[_Table], columns: Mapping[str, str], emit: Say) -> datasets.Dataset:
    """Normalise the tables of one split into a Dataset; empty records are dropped and counted."""
    kept: list[dict[str, Any]] = []
    seen = 0
    for table in tables:
        if not table.rows:
            raise DataError(f"{table.label}: no records (split '{split}' would be empty)")
        if table.blank:
            emit(f"skipped {table.blank} blank lines in {table.label}")
        fields = _resolve_fields(table, columns)
        for number, row in enumerate(table.rows, start=1):
            record = _normalise_checked(row, fields, f"{split}-{seen}", f"{table.label}: record {number}")
            seen += 1
            if record["dialogue"] and record["summary"]:
                kept.append(record)
    if seen - len(kept):
        emit(f"dropped {seen - len(kept)} empty records from {split}")
    if not kept:
        where = ", ".join(table.label for table in tables)  # name the files, as every other error does
        raise DataError(f"{where}: split '{split}' is empty: all {seen} records lack a dialogue or a summary")
    return _to_dataset(kept)


def _resolve_fields(table: _Table, columns: Mapping[str, str]) -> _Fields:
    """Find the source columns of a table, honouring the user's mapping, or name what is missing."""
    present = set(table.columns)

    def pick(name: str, *defaults: str) -> str | None:
        if name in columns:
            if columns[name] not in present:
                raise _missing(table, columns[name], name)
            return columns[name]
        return next((d for d in defaults if d in present), None)

    dialogue = pick("dialogue", "dialogue")
    if dialogue is None:
        raise _missing(table, "dialogue")
    summary = pick("summary", "summary")
    # ASCII digits, at most nine: int() of a hostile 5,000-digit column name would raise ValueError
    numbered = sorted((c for c in present if re.fullmatch(r"summary[0-9]{1,9}", c)), key=lambda c: int(c[7:]))
    references = tuple(numbered) or (("references",) if "references" in present else ())
    if summary is None and not references:
        raise _missing(table, "summary")
    return _Fields(dialogue=dialogue, id=pick("id", "id", "fname"), summary=summary, references=references)


def _missing(table: _Table, column: str, field_name: str | None = None) -> DataError:
    """The error for a column a table lacks, listing those it has."""
    role = f" (mapped to {field_name})" if field_name and field_name != column else ""
    has = ", ".join(table.columns) or "no columns"
    return DataError(
        f"{table.label}: column '{column}'{role} is missing (has: {has}); map columns with columns={{...}}"
    )


def _normalise_checked(row: Mapping[str, Any], fields: _Fields, fallback_id: str, where: str) -> dict[str, Any]:
    """``_normalise_row``, with values that cannot become UTF-8 strings as a DataError naming the record."""
    try:
        record = _normalise_row(row, fields, fallback_id)
        for text in (record["id"], record["dialogue"], record["summary"], *record["references"]):
            text.encode("utf-8")  # a lone surrogate ("\ud800" in JSON) would fail later inside pyarrow
    except UnicodeEncodeError as exc:
        bad = exc.object[exc.start : exc.end].encode("unicode_escape").decode("ascii")
        raise DataError(f"{where}: text holds a lone surrogate ({bad}), which is not valid Unicode") from exc
    except (ValueError, RecursionError) as exc:  # str() of a huge int or a deeply nested value
        raise DataError(f"{where}: value cannot be read as text ({first_line(exc)})") from exc
    return record


def _normalise_row(row: Mapping[str, Any], fields: _Fields, fallback_id: str) -> dict[str, Any]:
    """One output record: cleaned text, a stable id, the first reference as summary."""
    references = [ref for ref in _reference_texts(row, fields.references) if ref]
    summary = _clean(row.get(fields.summary)) if fields.summary else (references[0] if references else "")
    if summary and summary not in references:
        references.insert(0, summary)
    record_id = _clean(row.get(fields.id)) if fields.id else ""
    return {
        "id": record_id or fallback_id,
        "dialogue": _clean(row.get(fields.dialogue)),
        "summary": summary,
        "references": references,
    }


def _reference_texts(row: Mapping[str, Any], columns: tuple[str, ...]) -> list[str]:
    """Cleaned references from summary1..N columns or a list-valued ``references`` column."""
    if columns == ("references",):
        value = row.get("references")
        items = value if isinstance(value, (list, tuple)) else [value]
        return [_clean(item) for item in items]
    return [_clean(row.get(column)) for column in columns]


def _clean(value: Any) -> str:
    """Any cell value as normalised text (``text.normalise``: LF line ends, no outer whitespace); None is ''."""
    if value is None:
        return ""
    return normalise(value if isinstance(value, str) else str(value))


def _to_dataset(records: list[dict[str, Any]]) -> datasets.Dataset:
    """Build the Dataset; ``references`` only when some record has several."""
    features = {name: datasets.Value("string") for name in FIELDS}
    data: dict[str, list[Any]] = {name: [r[name] for r in records] for name in FIELDS}
    if any(len(r["references"]) > 1 for r in records):
        features["references"] = datasets.List(datasets.Value("string"))
        data["references"] = [r["references"] for r in records]
    return datasets.Dataset.from_dict(data, features=datasets.Features(features))


# ---------------------------------------------------------------- small helpers


def _choose_splits(source: _Source, wanted: tuple[str, ...] | None, label: str) -> dict[str, list[_Table]]:
    """Keep the requested splits; a single-split source takes the one requested name."""
    if wanted is None:
        return source.splits
    if source.single and len(wanted) == 1:
        return {wanted[0]: next(iter(source.splits.values()))}
    missing = [name for name in wanted if name not in source.splits]
    if missing:
        has = ", ".join(_ordered(source.splits))
        raise DataError(f"{label}: no split '{missing[0]}' (has: {has})")
    return {name: source.splits[name] for name in wanted}


def _wanted_splits(splits: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """Requested split names, canonicalised and de-duplicated."""
    if splits is None:
        return None
    names = (splits,) if isinstance(splits, str) else tuple(splits)
    if not names:
        raise ConfigError("splits: name at least one split, or pass None for all")
    return tuple(dict.fromkeys(canonical_split(name) for name in names))


def _check_columns(columns: Mapping[str, str] | None) -> dict[str, str]:
    """Validate a field -> source column mapping."""
    mapping = dict(columns or {})
    unknown = sorted(set(mapping) - set(FIELDS))
    if unknown:
        raise ConfigError(f"columns: unknown field '{unknown[0]}' (expected some of: {', '.join(FIELDS)})")
    return mapping


def _emitter(log: LogTarget) -> Say:
    """Turn the ``log`` argument into a one-line sink."""
    if log is None:
        return logger.info
    if isinstance(log, logging.Logger):
        return log.info
    return log


def _ordered(names: Mapping[str, Any] | Sequence[str]) -> list[str]:
    """Split names in train / validation / test order, then the rest sorted."""
    known = [n for n in SPLIT_ORDER if n in names]
    return known + sorted(n for n in names if n not in SPLIT_ORDER)


def _describe(source: PathLike | Mapping[str, PathLike]) -> str:
    """A short name of the source for messages."""
    if isinstance(source, Mapping):
        return "split -> file mapping"
    return os.fspath(source)


def _is_url(text: str) -> bool:
    """Whether ``text`` is an http(s) URL."""
    return text.startswith(("http://", "https://"))
