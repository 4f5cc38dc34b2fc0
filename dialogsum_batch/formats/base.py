"""What a format is: a reader from numbered lines to ``Parsed`` dialogues, the file suffixes it goes by, and a
sniffer that says why some content looks like it. Third-party formats are ``Format`` objects too, declared in
the ``dialogsum_batch.formats`` entry-point group exactly as the built-ins are."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import ChatSettings, FieldNames
from ..errors import InputError
from ..logs import Log
from .lines import MAX_LINE_BYTES, STDIN, Lines, display_name

DOCUMENT_BYTES = 512 * 1024 * 1024  # a format read whole (JSON documents, chat logs) holds at most this much


@dataclass(frozen=True)
class Parsed:
    """A reader's output before stream indices are assigned: fields (a record object), or a dialogue's text
    (with the reader's own ``id`` and the ``meta`` written beside its summary), or why there is none."""

    line: int
    fields: Mapping[str, Any] | None = None
    text: str | None = None
    error: InputError | None = None
    id: str | None = None  # a reader's stable id (chats: chat and start time); None: FILE:LINE
    meta: Mapping[str, Any] = field(default_factory=dict)  # written with the summary: chat, start, end, source


@dataclass(frozen=True)
class ReadContext:
    """One input as a reader sees it, and the options that shape its dialogues."""

    path: str  # as given; "-" is stdin
    names: FieldNames = field(default_factory=FieldNames)
    chats: ChatSettings = field(default_factory=ChatSettings)
    limit: int = MAX_LINE_BYTES  # --max-line-bytes: per line, and per message or cell built of several
    log: Log | None = None  # where a reader says which format it chose, or what it noticed

    @property
    def source(self) -> str:
        return display_name(self.path)

    @property
    def stdin(self) -> bool:
        return self.path == STDIN

    def error(self, line: int | None, reason: str, raw: str | None = None) -> Parsed:
        return Parsed(line or 0, error=InputError(self.source, line, reason, raw))

    def note(self, message: str) -> None:
        if self.log:
            self.log.info(message)

    def warn(self, message: str) -> None:
        if self.log:
            self.log.warning(message)


@dataclass(frozen=True)
class Head:
    """The start of an input, for sniffers: its first bytes and its first non-blank lines."""

    path: str
    magic: bytes = b""  # the first bytes after gunzipping (b"PK\x03\x04" is a zip)
    lines: tuple[str, ...] = ()  # the first non-blank lines, as text
    ended: bool = True  # no more lines follow those in ``lines``
    names: FieldNames = field(default_factory=FieldNames)
    folder: bool = False  # the path is a folder


MORE = "more"  # a sniffer's answer when it needs another line to tell
Reader = Callable[[Lines, ReadContext], Iterator[Parsed]]
Sniffer = Callable[[Head], "str | None"]  # why the content looks like this format, None, or MORE


@dataclass(frozen=True)
class Format:
    """A registered input format."""

    name: str
    summary: str  # one line for --help and docs: what it reads
    read: Reader
    suffixes: tuple[str, ...] = ()  # file names ending so are this format unless the content says otherwise
    sniff: Sniffer | None = None
    reads_path: bool = False  # opens the path itself (a folder or an archive); ``lines`` is then empty
