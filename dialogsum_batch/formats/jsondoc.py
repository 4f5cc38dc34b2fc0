"""JSON values for every format: one line of JSONL checked as a record, and a JSON document held whole but read
piece by piece, so each array item keeps its line for errors and a cut file still gives the items before the
cut. The valid JSON Python refuses (``files.json_limits``) and NaN / Infinity are each a reason here."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from ..errors import InputError
from ..files import NESTED_TOO_DEEPLY, JsonLimitError, decode_json_limited, loads_json_limited
from .base import DOCUMENT_BYTES, MORE, Head, Parsed, ReadContext
from .lines import Lines, shorten

BLANKS = re.compile(r"[ \t\r\n]*")


def parse_json_line(number: int, text: str, source: str) -> Parsed:
    try:
        value = loads_json_limited(text, reject_constants=True)
        reason = object_problem(value)
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON ({exc.msg})"
    except JsonLimitError as exc:
        reason = str(exc)
    if reason:
        return Parsed(number, error=InputError(source, number, reason, shorten(text)))
    return Parsed(number, fields=value)


def object_problem(value: Any) -> str | None:
    """Why a parsed line cannot be a record (not an object, a lone surrogate anywhere), or None."""
    if not isinstance(value, dict):
        return f"expected a JSON object, got {json_type(value)}"
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:  # "\ud800" escapes decode to a str that no UTF-8 writer can write
        bad = next((key for key, item in value.items() if not _encodable(key, item)), "?")
        return f"field '{_printable(bad)}' holds a lone surrogate (\\ud800-\\udfff), which is not text"
    except RecursionError:
        return NESTED_TOO_DEEPLY
    return None


def _encodable(key: str, item: Any) -> bool:
    try:
        json.dumps({key: item}, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError):
        return False
    return True


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def json_type(value: Any) -> str:
    names = {str: "string", int: "number", float: "number", bool: "boolean", list: "array", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


# ---------------------------------------------------------------------------- documents


class JsonProblem(Exception):
    """Where and why a document stops being readable."""

    def __init__(self, line: int, reason: str):
        super().__init__(reason)
        self.line = line
        self.reason = reason


class JsonDocument:
    """A JSON document's text with line lookups; ``cut`` is the line error that ended it early, if any."""

    def __init__(self, text: str, cut: InputError | None = None):
        self.text = text
        self.cut = cut
        self._mark = (0, 1)  # (position, its line): lookups mostly move forward

    def line(self, pos: int) -> int:
        start, line = self._mark if pos >= self._mark[0] else (0, 1)
        line += self.text.count("\n", start, pos)
        self._mark = (pos, line)
        return line

    def skip(self, pos: int) -> int:
        return BLANKS.match(self.text, pos).end()  # type: ignore[union-attr]

    def at(self, pos: int) -> str:
        return self.text[pos : pos + 1]

    def problem(self, pos: int, reason: str) -> JsonProblem:
        if self.cut is not None and self.skip(pos) >= len(self.text):  # the text ended where a line was bad
            return JsonProblem(self.cut.line or 0, self.cut.reason)
        return JsonProblem(self.line(pos), reason)

    def value(self, pos: int) -> tuple[Any, int]:
        """The value starting at ``pos`` (blanks skipped) and the position after it."""
        pos = self.skip(pos)
        try:
            return decode_json_limited(self.text, pos, reject_constants=True)
        except json.JSONDecodeError as exc:
            raise self.problem(exc.pos, f"invalid JSON ({exc.msg})") from None
        except JsonLimitError as exc:
            raise self.problem(pos, str(exc)) from None

    def expect(self, pos: int, char: str, what: str) -> int:
        pos = self.skip(pos)
        if self.at(pos) != char:
            found = repr(self.at(pos)) if pos < len(self.text) else "the end"
            raise self.problem(pos, f"invalid JSON (expected {what}, found {found})")
        return pos + 1

    def items(self, pos: int) -> Iterator[tuple[int, Any]]:
        """(line, value) of each item of the array at ``pos``; a bad spot raises after the items before it, and so
        does a document cut after the array (the lines lost there may have held more)."""
        pos = self.expect(pos, "[", "an array")
        if self.at(self.skip(pos)) != "]":
            while True:
                start = self.skip(pos)
                value, pos = self.value(start)
                yield self.line(start), value
                pos = self.skip(pos)
                if self.at(pos) == "]":
                    break
                pos = self.expect(pos, ",", "',' or ']'")
        if self.cut is not None:
            raise JsonProblem(self.cut.line or 0, self.cut.reason)

    def until_key(self, pos: int, key: str) -> tuple[dict[str, Any], int | None]:
        """The members of the object at ``pos`` before ``key``, and where ``key``'s value starts (None when the
        object has no such key). Big lists come after the small members in the exports read here."""
        head: dict[str, Any] = {}
        pos = self.expect(pos, "{", "an object")
        if self.at(self.skip(pos)) == "}":
            return head, None
        while True:
            name, pos = self.value(pos)
            if not isinstance(name, str):
                raise self.problem(pos, "invalid JSON (an object key must be a string)")
            pos = self.expect(pos, ":", "':'")
            if name == key:
                return head, self.skip(pos)
            head[name], pos = self.value(pos)
            pos = self.skip(pos)
            if self.at(pos) == "}":
                return head, None
            pos = self.expect(pos, ",", "',' or '}'")


def document_key(
    lines: Lines, context: ReadContext, key: str
) -> tuple[JsonDocument, dict[str, Any], int | None] | Parsed:
    """A chat export's document, the members before ``key`` at its top level, and where ``key``'s value starts
    (None when the top level has no such key); or, as a Parsed, the one error that stops the input."""
    document = read_document(lines, context)
    if isinstance(document, Parsed):
        return document
    try:
        head, found = document.until_key(0, key)
    except JsonProblem as problem:
        return context.error(problem.line, problem.reason)
    return document, head, found


def read_document(lines: Lines, context: ReadContext) -> JsonDocument | Parsed:
    """The document's text, up to the first line that is not text (kept as ``cut``); a document over the size
    cap is an error instead."""
    parts: list[str] = []
    size, cut = 0, None
    cap = max(DOCUMENT_BYTES, context.limit)
    for number, text in lines:
        if isinstance(text, InputError):
            cut = text
            break
        size += len(text) + 1
        if size > cap:
            return context.error(number, f"a JSON document over {cap:,} bytes; split it into JSONL records")
        parts.append(text)
    return JsonDocument("\n".join(parts), cut)


def start_of(document: JsonDocument) -> str:
    """The first character of the document: '{', '[', or another."""
    return document.at(document.skip(0))


# ---------------------------------------------------------------------------- shapes

TELEGRAM_TYPES = (
    "personal_chat|private_group|private_supergroup|public_supergroup|private_channel|public_channel|bot_chat|"
    "saved_messages"
)
SHAPES = (  # (shape, regex over a document's first lines): the keys each export starts with
    ("discord", re.compile(r'"guild"\s*:\s*\{.*"channel"\s*:\s*\{', re.S)),
    ("telegram", re.compile(rf'"type"\s*:\s*"({TELEGRAM_TYPES})"|"personal_information"\s*:|"chats"\s*:\s*\{{')),
    ("data", re.compile(r'^\s*\{\s*"data"\s*:\s*\[')),
)
MEMBER_LINE = re.compile(r'^\s*"[^"]*"\s*:')  # a pretty-printed object member: "key": ...


def document_shape(value: dict[str, Any]) -> str | None:
    """Which export a parsed top-level object is: discord, telegram, data ({"data": [...]}), or None."""
    if isinstance(value.get("guild"), dict) and isinstance(value.get("messages"), list):
        return "discord"
    telegram_chat = isinstance(value.get("messages"), list) and str(value.get("type")) in TELEGRAM_TYPES.split("|")
    if telegram_chat or isinstance(value.get("chats"), dict):
        return "telegram"
    if isinstance(value.get("data"), list):
        return "data"
    return None


def text_shape(text: str) -> str | None:
    """The same from the first lines of a document spread over many lines."""
    return next((shape for shape, pattern in SHAPES if pattern.search(text)), None)


BROKEN = object()  # first_value of a line that is not JSON


@lru_cache(maxsize=2)  # every sniffer asks about the same first line, which may be megabytes long
def first_value(line: str) -> Any:
    """A head line parsed as JSON, or BROKEN."""
    try:
        return loads_json_limited(line)
    except ValueError:  # JsonLimitError included
        return BROKEN


def head_shape(lines: tuple[str, ...]) -> str | None:
    """The shape of a document from its first lines: from the parsed first line when it is whole, else from the
    keys of the lines seen; ``"document"`` for a JSON object over several lines of no known shape."""
    if not lines or not lines[0].lstrip().startswith("{"):
        return None
    value = first_value(lines[0])
    if isinstance(value, dict):
        return document_shape(value)
    shape = text_shape("\n".join(lines))
    if shape in ("discord", "telegram"):
        return shape  # an export's keys, whatever its layout
    many_lines = lines[0].strip() == "{" or (len(lines) > 1 and MEMBER_LINE.match(lines[1]) is not None)
    return (shape or "document") if many_lines else None


HEAD_LINES = 200  # lines of a JSON document looked at for its shape
SHAPE_REASONS = {
    "discord": "a DiscordChatExporter JSON export (guild, channel, messages)",
    "telegram": "a Telegram Desktop export (result.json: chats or messages)",
    "data": 'a JSON document holding {"data": [...]}',
    "document": "a JSON document over several lines",
}


def sniff_shape(head: Head, *wanted: str) -> str | None:
    """A sniffer's answer for documents of the ``wanted`` shapes; MORE while a document's keys may come."""
    shape = head_shape(head.lines)
    if shape == "document" and not head.ended and len(head.lines) < HEAD_LINES:
        return MORE
    return SHAPE_REASONS[shape] if shape in wanted else None
