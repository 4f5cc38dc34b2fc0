"""The caches under the one cache root (``config.cache_home``): CTranslate2 conversions and downloads."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .backends.ct2_cache import cache_root, clear_entries, format_entries, list_entries
from .config import cache_home, downloads_dir

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
    """Remove conversions and downloads (those unused for ``older_than_days``, else all); what was freed."""
    removed = clear_entries(cache_root(), older_than_days)
    freed = sum(entry.size_bytes for entry in removed)
    cutoff = time.time() - older_than_days * DAY if older_than_days is not None else None
    gone = 0
    for path in download_files():
        if cutoff is None or path.stat().st_mtime < cutoff:
            freed += path.stat().st_size
            shutil.rmtree(path.parent, ignore_errors=True)  # each download has a folder of its own
            gone += 1
    return f"removed {len(removed)} conversions and {gone} downloads ({freed / 2**20:.1f} MiB) from {cache_home()}"


def download_files() -> list[Path]:
    root = downloads_dir()
    return sorted(path for path in root.glob("*/*") if path.is_file() and not path.name.endswith(".lock"))
