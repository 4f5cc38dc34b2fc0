"""Chat logs into conversations: a chat or channel is one long stream of messages, and the model was trained on
one conversation per record. Messages are split where a silence exceeds ``--gap`` and by thread where the format
has threads; every message lands in exactly one dialogue (a lone one is a dialogue of one turn), as a
``Name: text`` turn on one line. Each dialogue gets a stable id, the chat and its start time, and says where it
came from and when it started and ended."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .base import Parsed, ReadContext
from .jsondoc import JsonProblem

# SAMSum marks media with these: the model has seen them, so every format writes its media so.
PHOTO, VIDEO, GIF, AUDIO, FILE = "<file_photo>", "<file_video>", "<file_gif>", "<file_audio>", "<file_other>"
MEDIA_BY_SUFFIX = {
    **dict.fromkeys(("jpg", "jpeg", "png", "webp", "heic", "bmp"), PHOTO),
    **dict.fromkeys(("mp4", "mov", "mkv", "webm", "3gp", "avi"), VIDEO),
    **dict.fromkeys(("gif",), GIF),
    **dict.fromkeys(("opus", "ogg", "mp3", "m4a", "wav", "aac"), AUDIO),
}


@dataclass(frozen=True)
class Message:
    """One message of a chat, its text already on one line."""

    time: datetime
    speaker: str
    text: str
    line: int  # where it starts in ``where``
    where: str  # the file (or archive member) it came from
    thread: str | None = None  # messages of one thread make one dialogue, whatever their gaps


def one_line(text: str) -> str:
    """A message's lines joined with spaces (the turn must stay one line), and text any writer can write."""
    joined = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return joined.encode("utf-8", "replace").decode("utf-8")  # lone surrogates (\ud800) become '?'


def media(name: str) -> str:
    """SAMSum's placeholder for a file of this name (or MIME type)."""
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    kind = name.split("/", 1)[0].lower()
    return MEDIA_BY_SUFFIX.get(suffix) or {"image": PHOTO, "video": VIDEO, "audio": AUDIO}.get(kind, FILE)


def split_by_gap(messages: list[Message], gap: timedelta) -> list[list[Message]]:
    """Runs of messages with no silence longer than ``gap`` between neighbours (a clock going back splits not)."""
    runs: list[list[Message]] = []
    for message in messages:
        if runs and message.time - runs[-1][-1].time <= gap:
            runs[-1].append(message)
        else:
            runs.append([message])
    return runs


def dialogues(
    chat: str,
    messages: Iterable[Message],
    context: ReadContext,
    fmt: str,
    stamp: Callable[[datetime], str] | None = None,  # how times are written: ISO 8601, or offsets (subtitles)
) -> Iterator[Parsed]:
    """A chat's dialogues in order of their start: threads whole, the other messages split by the gap."""
    main: list[Message] = []
    threads: dict[str, list[Message]] = {}
    for message in messages:
        (threads.setdefault(message.thread, []) if message.thread else main).append(message)
    gap = timedelta(minutes=context.chats.gap_minutes)
    runs = split_by_gap(main, gap) + list(threads.values())
    runs.sort(key=lambda run: (run[0].time, run[0].line))
    taken: set[str] = set()
    for run in runs:
        yield conversation(chat, run, fmt, taken, stamp or iso)


def conversation(chat: str, run: list[Message], fmt: str, taken: set[str], stamp: Callable[[datetime], str]) -> Parsed:
    start, end = stamp(run[0].time), stamp(run[-1].time)
    record_id = f"{chat}/{start}"
    if record_id in taken:  # two dialogues starting in the same second (a thread and a run): both kept, both named
        record_id += f"#{sum(1 for other in taken if other.startswith(record_id))}"
    taken.add(record_id)
    meta = {"chat": chat, "start": start, "end": end, "turns": len(run), "format": fmt}
    meta["source"] = f"{run[0].where}:{run[0].line}"
    if run[0].thread:
        meta["thread"] = run[0].thread
    text = "\n".join(f"{message.speaker}: {message.text}" for message in run)
    return Parsed(run[0].line, text=text, id=record_id, meta=meta)


def iso(time: datetime) -> str:
    return time.isoformat(timespec="seconds").replace("+00:00", "Z")


def chat_name(context: ReadContext, prefixes: tuple[str, ...] = ()) -> str:
    """A chat's name from its file: the stem less an export's prefix; the folder for a generic name."""
    if context.stdin:
        return "stdin"
    path = Path(context.path[:-3] if context.path.endswith(".gz") else context.path)
    name = path.stem
    if name.startswith("_") or name in ("result", "messages", "chat"):
        name = path.resolve().parent.name or name
    for prefix in prefixes:
        name = re.sub(f"^{re.escape(prefix)}", "", name)
    return name.strip() or path.stem


Convert = Callable[[Any, int, str], "Message | str | None"]  # (item, line, where) -> message, why not, or skip


def messages_of(items: Iterable[tuple[int, Any]], convert: Convert, context: ReadContext) -> Iterator[Message | Parsed]:
    """Messages from a document's items: an item that is no message is an error at its line (``convert`` gives
    the reason), a service item (None) is left out, and a cut document is an error after the messages before it."""
    try:
        for line, item in items:
            if not isinstance(item, dict):
                yield context.error(line, f"expected a message object, got {type(item).__name__}")
                continue
            message = convert(item, line, context.source)
            if isinstance(message, str):
                yield context.error(line, message)
            elif message is not None and len(message.text) > context.limit:
                yield context.error(line, f"message over {context.limit:,} bytes (--max-line-bytes)")
            elif message is not None:
                yield message
    except JsonProblem as problem:
        yield context.error(problem.line, problem.reason)


def chat_dialogues(chat: str, found: Iterable[Message | Parsed], context: ReadContext, fmt: str) -> Iterator[Parsed]:
    """Errors as they come, then the chat's dialogues (a chat is split only once all its messages are in)."""
    messages: list[Message] = []
    for item in found:
        if isinstance(item, Parsed):
            yield item
        else:
            messages.append(item)
    if len({message.time.tzinfo is None for message in messages}) > 1:  # a time without offset among offsets: UTC
        messages = [m if m.time.tzinfo else replace(m, time=m.time.replace(tzinfo=timezone.utc)) for m in messages]
    messages.sort(key=lambda message: message.time)
    yield from dialogues(chat, messages, context, fmt)


def parse_time(value: Any) -> datetime:
    """An ISO 8601 time as exports write it ('Z', offsets, 3 to 7 fraction digits); ValueError otherwise."""
    if not isinstance(value, str):
        raise ValueError(value)
    text = value.strip().replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # .NET writes 7 digits
    return datetime.fromisoformat(text)


def listed(value: Any) -> list[Any]:
    """A field that should hold a list, or an empty list when it holds anything else."""
    return value if isinstance(value, list) else []


def join_text(value: Any) -> str:
    """Text as a string, or a list of strings and entity objects holding ``text`` (Telegram)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(
            part if isinstance(part, str) else str(part.get("text", "")) if isinstance(part, dict) else ""
            for part in value
        )
    return ""
