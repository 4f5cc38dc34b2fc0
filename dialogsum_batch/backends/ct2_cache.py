"""The CTranslate2 conversion cache: a transformers folder converted once per content and quantization.

``dialogsum-batch --backend ctranslate2`` on a transformers folder (a training run, a Hub snapshot)
converts it with the export's own conversion (``ct2_convert``) into
``~/.cache/dialogsum_batch/ctranslate2/<key>`` and serves from there; later runs compute the same key
and skip the conversion. ``$XDG_CACHE_HOME`` is honoured and ``$DIALOGSUM_CACHE`` replaces
``~/.cache/dialogsum_batch`` altogether.

* The key is a sha256 over the names and contents of the weights, config, tokenizer and generation
  files, the quantization, the ctranslate2 version and this cache's layout version: a new fine-tune
  written into the same folder is a new key (the old entry stays until ``invoke cache --clear``).
* One converter per key at a time (an fcntl lock file). The conversion is written into a hidden
  folder inside the cache and renamed into place, so no reader ever sees a half-written entry.
* A marker file written last lists every file with its size and sha256. An entry without it, or
  whose files no longer match it, is moved aside and rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

from ..config import CACHE_ENV, cache_home
from ..errors import ModelError
from ..files import exclusive_lock, publish_dir, sha256_file, staging_dir, write_json_atomic
from ..logs import Say, library_bars
from ..modelfiles import check_transformers_folder, read_json
from ..version import __version__
from . import ct2_convert  # by module: tests count conversions by replacing ct2_convert.write_ctranslate2

MARKER = "dialogsum_cache.json"  # written last: an entry without it is incomplete
DIGESTS = "digests.json"
LAYOUT = 1  # bump when the conversion itself changes, so that entries made the old way are not served
# What the converter reads; the rest of a run folder (trainer state, metrics, cards) does not change the result.
SOURCE_PATTERNS = (
    "*.safetensors",
    "*.safetensors.index.json",
    "pytorch_model*.bin",
    "pytorch_model*.bin.index.json",
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "*.model",
    "vocab.*",
    "merges.txt",
)


def cache_root() -> Path:
    """Where conversions live: ``$DIALOGSUM_CACHE/ctranslate2``, else the user cache dir's."""
    return cache_home() / "ctranslate2"


# ----------------------------------------------------------------------------- digests


class DigestIndex:
    """sha256 of files, remembered by (path, size, mtime_ns) in ``digests.json``.

    Hashing pegasus-large's 2.3 GB of weights takes seconds on every run, longer than loading the
    cached conversion. A file whose size and nanosecond mtime are unchanged has not been rewritten
    (the bet make and git's index make); everything that writes weights (save_pretrained, a copy, a
    download) sets a new mtime, and then the file is hashed again. Losing the index (two processes
    saving at once, a corrupt file) only costs a rehash.
    """

    def __init__(self, path: Path):
        self.path = path
        self.known: dict[str, list[Any]] = read_json(path) or {}
        self.changed = False

    def digest(self, file: Path) -> str:
        """The content hash of ``file`` (symlinks followed, as in a Hub snapshot)."""
        real = os.path.realpath(file)
        stat = os.stat(real)
        stamp = [stat.st_size, stat.st_mtime_ns]
        known = self.known.get(real)
        if isinstance(known, list) and known[:2] == stamp:
            return str(known[2])
        _, value = sha256_file(Path(real))
        self.remember(Path(real), value)
        return value

    def remember(self, file: Path, value: str) -> None:
        """Record a digest computed elsewhere (a folder renamed into place keeps its files' stat)."""
        stat = file.stat()
        self.known[os.path.realpath(file)] = [stat.st_size, stat.st_mtime_ns, value]
        self.changed = True

    def save(self) -> None:
        """Write the index back (entries of vanished files dropped); a read-only cache keeps the old one."""
        if not self.changed:
            return
        alive = {path: value for path, value in self.known.items() if os.path.exists(path)}
        try:
            write_json_atomic(self.path, alive)
        except OSError:
            pass


def source_files(source: Path) -> list[Path]:
    """The files of a transformers folder that the conversion depends on, sorted by name."""
    found = {path for pattern in SOURCE_PATTERNS for path in source.glob(pattern) if path.is_file()}
    return sorted(found, key=lambda path: path.name)


def cache_key(source: Path, quantization: str, ct2_version: str, digests: DigestIndex) -> str:
    """The entry name: content of the source files, quantization, ctranslate2 version, cache layout."""
    digest = sha256(json.dumps([LAYOUT, quantization, ct2_version]).encode())
    for file in source_files(source):
        digest.update(f"\n{file.name}\0{digests.digest(file)}".encode())
    return digest.hexdigest()[:32]


# ----------------------------------------------------------------------------- entries


def is_complete(entry: Path, key: str, digests: DigestIndex) -> bool:
    """True when the marker names this key and every file in the folder matches it (and no other is there)."""
    marker = read_json(entry / MARKER)
    files = marker.get("files") if isinstance(marker, dict) and marker.get("key") == key else None
    if not isinstance(files, dict) or not files:
        return False
    try:
        present = {path.name for path in entry.iterdir() if path.is_file()} - {MARKER}
        return present == set(files) and all(
            (entry / name).stat().st_size == info.get("size") and digests.digest(entry / name) == info.get("sha256")
            for name, info in files.items()
        )
    except (OSError, AttributeError):
        return False


def write_marker(folder: Path, meta: dict[str, Any], digests: DigestIndex) -> dict[str, dict[str, Any]]:
    """The marker, last: every file's size and sha256, and what the entry was made from; returns the files."""
    files = {
        path.name: {"size": path.stat().st_size, "sha256": digests.digest(path)}
        for path in sorted(folder.iterdir())
        if path.is_file()
    }
    write_json_atomic(folder / MARKER, {**meta, "files": files})
    return files


def remove_leftovers(root: Path, key: str) -> None:
    """Staging and set-aside folders of this key: only a converter that died holding the key's lock leaves them."""
    for leftover in [*root.glob(f".tmp-{key}-*"), *root.glob(f".{key}.old-*")]:
        shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def key_lock(root: Path, key: str, say: Say, wait: bool = True) -> Iterator[bool]:
    """Hold the key's lock file for the block; yields False when ``wait`` is off and another process holds it."""
    path = root / f".lock-{key}"
    waiting = f"another process is converting this model into the CTranslate2 cache; waiting for it ({path})"
    with exclusive_lock(path, wait, lambda: say(waiting)) as held:
        yield held is not None


# ----------------------------------------------------------------------------- converting and serving


@dataclass(frozen=True)
class Conversion:
    """What to convert, and how it is named in the log and the marker."""

    source: Path  # a transformers model folder (a local folder or a Hub snapshot)
    quantization: str  # CTranslate2 weight type: int8, int8_float32, float32, bfloat16, ...
    model: str  # the name the user gave (folder or Hub id), for the log and `invoke cache --list`
    allow_pickle: bool = False  # read *.bin weights when the folder has no safetensors


def cached_conversion(conversion: Conversion, log: Say | None = None) -> Path:
    """A CTranslate2 folder for ``conversion.source``: from the cache, or converted into it now."""
    from .ctranslate2 import import_ctranslate2

    say = log or (lambda _: None)
    ct2 = import_ctranslate2()
    check_transformers_folder(conversion.source, conversion.allow_pickle)
    root = writable_root()
    digests = DigestIndex(root / DIGESTS)
    key = cache_key(conversion.source, conversion.quantization, ct2.__version__, digests)
    entry = root / key
    seconds = (
        None if is_complete(entry, key, digests) else convert_once(conversion, entry, ct2.__version__, digests, say)
    )
    digests.save()
    if seconds is not None:
        say(f"converted {conversion.model} ({conversion.quantization}) into the cache in {seconds:.1f} s: {entry}")
        return entry
    mark_used(entry)
    say(f"{conversion.model} ({conversion.quantization}) from the CTranslate2 cache: {entry}")
    return entry


def convert_once(conversion: Conversion, entry: Path, ct2_version: str, digests: DigestIndex, say: Say) -> float | None:
    """Under the key's lock, convert unless another process did while we waited; seconds taken, or None."""
    try:
        with key_lock(entry.parent, entry.name, say):
            if is_complete(entry, entry.name, digests):
                return None
            if entry.exists():
                say(f"the cached conversion {entry} is incomplete or damaged; converting again")
            else:
                say(f"converting {conversion.model} to CTranslate2 ({conversion.quantization}); later runs reuse it")
            return build_entry(conversion, entry, entry.name, ct2_version, digests)
    except OSError as exc:  # a read-only or full cache; the converter's own errors arrive as ModelError
        raise ModelError(
            f"cannot write the CTranslate2 cache {entry.parent} ({exc.strerror or exc}); "
            f"set {CACHE_ENV} to a writable folder"
        ) from exc


def writable_root() -> Path:
    """The cache folder, created when missing; a one-line error naming the variable that moves it."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelError(
            f"cannot create the CTranslate2 cache {root} ({exc.strerror or exc}); set {CACHE_ENV} to a writable folder"
        ) from exc
    return root


def build_entry(conversion: Conversion, entry: Path, key: str, ct2_version: str, digests: DigestIndex) -> float:
    """Convert into a staging folder inside the cache, mark it complete, rename it into place; seconds taken."""
    remove_leftovers(entry.parent, key)
    with staging_dir(entry.parent, f".tmp-{key}-") as staging:  # removed unless published
        started = time.perf_counter()
        convert_into(conversion, staging)
        seconds = time.perf_counter() - started
        files = write_marker(staging, entry_meta(conversion, key, ct2_version, seconds), digests)
        publish_dir(staging, entry)  # a broken entry found there is moved aside and removed
    for name, info in files.items():  # same stat after the rename: the next run need not hash them again
        digests.remember(entry / name, info["sha256"])
    return seconds


def convert_into(conversion: Conversion, staging: Path) -> None:
    """The export's own CTranslate2 conversion (tokenizer and generation config copied) and its info file."""
    with library_bars():  # no tqdm bars under cron or CI
        ct2_convert.write_ctranslate2(conversion.source, staging, conversion.quantization)
    ct2_convert.write_info(staging, conversion.source, "ctranslate2", conversion.quantization)


def entry_meta(conversion: Conversion, key: str, ct2_version: str, seconds: float) -> dict[str, Any]:
    import transformers

    return {
        "key": key,
        "model": conversion.model,
        "source": str(conversion.source),
        "quantization": conversion.quantization,
        "layout": LAYOUT,
        "ctranslate2": ct2_version,
        "transformers": transformers.__version__,
        "dialogsum_batch": __version__,
        "created": time.time(),
        "convert_seconds": round(seconds, 3),
    }


def mark_used(entry: Path) -> None:
    """The marker's mtime is the entry's last use (what ``--clear --older-than`` goes by); read-only caches skip it."""
    try:
        os.utime(entry / MARKER)
    except OSError:
        pass


# ----------------------------------------------------------------------------- listing and clearing


@dataclass(frozen=True)
class CacheEntry:
    """One cache folder, as ``invoke cache --list`` shows it."""

    key: str
    path: Path
    model: str | None  # the folder or Hub id it was converted from
    quantization: str | None
    size_bytes: int
    last_used: float  # seconds since the epoch: the marker's mtime
    complete: bool  # marker present (files are verified when the entry is used, not here)


def list_entries(root: Path | None = None) -> list[CacheEntry]:
    """Every entry under ``root`` (the cache root by default), most recently used first."""
    root = root or cache_root()
    if not root.is_dir():
        return []
    entries = [describe_entry(path) for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")]
    return sorted(entries, key=lambda entry: entry.last_used, reverse=True)


def describe_entry(path: Path) -> CacheEntry:
    marker = read_json(path / MARKER)
    meta = marker if isinstance(marker, dict) else {}
    size = sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
    stamp = (path / MARKER) if meta else path
    return CacheEntry(
        path.name, path, meta.get("model"), meta.get("quantization"), size, stamp.stat().st_mtime, bool(meta)
    )


def clear_entries(root: Path | None = None, older_than_days: float | None = None) -> list[CacheEntry]:
    """Remove entries (those unused for ``older_than_days``, else all) and leftovers; the removed entries.

    An entry whose key is being converted right now is left alone. A job already serving from an
    entry has loaded the model into memory and does not notice.
    """
    root = root or cache_root()
    cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
    removed = []
    for entry in list_entries(root):
        if cutoff is not None and entry.last_used > cutoff:
            continue
        with key_lock(root, entry.key, lambda _: None, wait=False) as held:
            if held:
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry)
    if cutoff is None:
        clear_leftovers(root)
    return removed


def clear_leftovers(root: Path) -> None:
    """Staging folders of dead converters, lock files and the digest index, except where a conversion runs."""
    keys = {path.name.split("-")[1] for path in root.glob(".tmp-*")}
    keys |= {path.name[1:].split(".old-")[0] for path in root.glob(".*.old-*")}
    keys |= {path.name[len(".lock-") :] for path in root.glob(".lock-*")}
    for key in keys:
        with key_lock(root, key, lambda _: None, wait=False) as held:
            if held:
                remove_leftovers(root, key)
                (root / f".lock-{key}").unlink(missing_ok=True)
    (root / DIGESTS).unlink(missing_ok=True)


# ----------------------------------------------------------------------------- files


def format_entries(root, entries) -> str:
    """A plain table, one line per entry, under a header naming the folder and the total size."""
    total = sum(entry.size_bytes for entry in entries) / 2**20
    lines = [f"{root}: {len(entries)} entries, {total:.1f} MiB"]
    if entries:
        lines.append(f"{'key':<12}  {'quantization':<13}  {'MiB':>8}  {'last used':<16}  source")
    for entry in entries:
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
        model = entry.model if entry.complete else "(incomplete: rebuilt on next use)"
        lines.append(
            f"{entry.key[:12]:<12}  {entry.quantization or '-':<13}  {entry.size_bytes / 2**20:>8.1f}  "
            f"{used:<16}  {model}"
        )
    return "\n".join(lines)
