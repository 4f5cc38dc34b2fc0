"""``invoke cache``: show and free the CTranslate2 conversions that ``--backend ctranslate2`` keeps."""

from __future__ import annotations

import time

from invoke.exceptions import Exit

from . import register

HELP = {
    "list_": "Show every entry: key, source model, quantization, size, last use (the default action)",
    "clear": "Remove entries (all, or those unused for --older-than days) and leftovers of dead conversions",
    "older_than": "With --clear: only entries not used for this many days",
}


@register(help=HELP)
def cache(c, list_=False, clear=False, older_than=None):
    """Show the CTranslate2 conversion cache (~/.cache/dialogsum_batch/ctranslate2, or $DIALOGSUM_CACHE), or free it.

    invoke cache --list
    invoke cache --clear --older-than 30
    """
    from ..backends.ct2_cache import cache_root, clear_entries, list_entries

    if older_than not in (None, "") and not clear:
        raise Exit("cache: --older-than applies to --clear", code=2)
    root = cache_root()
    if clear:
        days = float(older_than) if older_than not in (None, "") else None
        removed = clear_entries(root, days)
        freed = sum(entry.size_bytes for entry in removed) / 2**20
        print(f"removed {len(removed)} entries ({freed:.1f} MiB) from {root}")
        return removed
    entries = list_entries(root)
    print(format_entries(root, entries))
    return entries


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
