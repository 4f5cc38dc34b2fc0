"""Input formats: a registry of ``name -> Format``, the built-ins plus those other packages declare in the
``dialogsum_batch.formats`` entry-point group (the built-ins are declared there too, the same way, in
setup.py). Every format reads lines from the same reader (``lines``: gzip, stdin, line caps, bad lines as
errors) and yields ``Parsed`` dialogues; ``--format auto`` picks one by content, then by name (``detect``).

A plugin: ``Format(name, summary, read, suffixes=(".ext",), sniff=...)`` where ``read(lines, context)``
yields ``Parsed`` and never raises on bad data, and ``sniff(head)`` says why content looks like the format
(or returns None, or ``MORE`` to see another line).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from typing import IO

from .base import MORE, Format, Head, Parsed, ReadContext  # noqa: F401 (the plugin interface)
from .detect import is_folder, parse_stream
from .discord import DISCORD
from .plain import JSONL, TEXT
from .slack import SLACK
from .subtitles import SRT, VTT
from .tabular import CSV, JSON, TSV
from .telegram import TELEGRAM
from .whatsapp import WHATSAPP

GROUP = "dialogsum_batch.formats"
# In the order sniffers are asked: the most specific first, plain text (no sniffer) last.
SNIFFED = (SLACK, TELEGRAM, DISCORD, WHATSAPP, VTT, SRT, JSON, JSONL, CSV, TSV, TEXT)
BUILTIN: dict[str, Format] = {fmt.name: fmt for fmt in SNIFFED}
# The order --help shows.
LISTED = ("jsonl", "text", "csv", "tsv", "json", "whatsapp", "slack", "telegram", "discord", "srt", "vtt")


def format_names() -> list[str]:
    """Every format's name, built-ins first, without importing any plugin (for --help)."""
    plugins = sorted(entry.name for entry in entry_points(group=GROUP) if entry.name not in BUILTIN)
    return [*LISTED, *(name for name in BUILTIN if name not in LISTED), *plugins]


def registry() -> dict[str, Format]:
    """Built-in formats plus those other packages declare as entry points; a built-in keeps its name."""
    found = dict(BUILTIN)
    for entry in entry_points(group=GROUP):
        if entry.name not in found:
            found[entry.name] = entry.load()
    return found


def parse_input(
    context: ReadContext, fmt: str, stream: IO[bytes] | None, formats: Mapping[str, Format] | None = None
) -> Iterator[Parsed]:
    """One input's dialogues: ``fmt`` or, for ``auto``, the format its content and name point to. ``formats``
    is the registry, looked up once by a caller reading many inputs (entry points are scanned, not cached)."""
    return parse_stream(context, fmt, stream, formats if formats is not None else registry())


__all__ = ["MORE", "Format", "Head", "Parsed", "ReadContext", "format_names", "is_folder", "parse_input", "registry"]
