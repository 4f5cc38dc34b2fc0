"""Text as every reader of this project hands it on: one rule, with no imports, so any module may use it."""

from __future__ import annotations


def normalise(text: str) -> str:
    """CRLF and CR line ends become LF; outer whitespace goes."""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()
