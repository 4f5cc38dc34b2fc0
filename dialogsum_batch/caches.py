"""The caches under the one cache root (``config.cache_home``): CTranslate2 conversions and downloads."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .backends.ct2_cache import cache_root, clear_entries, format_entries, list_entries
from .config import cache_home, downloads_dir
from .files import exclusive_lock

DAY = 86400.0


def describe_caches() -> str:
    """A table of the conversions, then one line for the downloads."""
    files = download_files()
    size = sum(path.stat().st_size for path in files) / 2**20
    return (
        f"cache root {cache_home()}\n{format_entries(cache_root(), list_entries())}\n"
        f"{downloads_dir()}: {len(files)} downloads, {size:.1f} MiB"
    )


def clear_caches(older_than_days: float | None = None) -> str:
    """Remove conversions and downloads (those unused for ``older_than_days``, else all); what was freed.

    A download being fetched right now (its lock held) is left alone, as a conversion being made is.
    """
    removed = clear_entries(cache_root(), older_than_days)
    freed = sum(entry.size_bytes for entry in removed)
    cutoff = time.time() - older_than_days * DAY if older_than_days is not None else None
    gone = 0
    for path in download_files():
        stat = path.stat()
        if cutoff is not None and stat.st_mtime >= cutoff:
            continue
        with exclusive_lock(path.with_name(path.name + ".lock"), wait=False) as held:  # corpora's download lock
            if held is None:
                continue
            shutil.rmtree(path.parent, ignore_errors=True)  # each download has a folder of its own
        freed += stat.st_size
        gone += 1
    return f"removed {len(removed)} conversions and {gone} downloads ({freed / 2**20:.1f} MiB) from {cache_home()}"


def download_files() -> list[Path]:
    """The finished downloads: not their lock files, nor the hidden part a fetch in progress writes."""
    return sorted(
        path
        for path in downloads_dir().glob("*/*")
        if path.is_file() and not path.name.startswith(".") and not path.name.endswith(".lock")
    )
