"""WhatsApp chat exports (``Export chat`` on a phone): a text file, one message per timestamped line.

Android: ``12/01/2024, 21:15 - Anna: text``; iOS: ``[12/01/2024, 21:15:03] Anna: text``. Dates follow the
phone's locale (day or month first, 2- or 4-digit years, ``/ . -``), clocks are 12- or 24-hour (``9:15 PM``,
``9:15 p. m.``, a narrow no-break space before the marker). A line without a timestamp continues the message
above it. System lines (encryption notice, joins, group changes, deleted messages) are dropped; media become
SAMSum's ``<file_photo>``-style placeholders.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

from ..errors import InputError
from .base import DOCUMENT_BYTES, MORE, Format, Head, Parsed, ReadContext
from .chats import AUDIO, FILE, GIF, PHOTO, VIDEO, Message, chat_name, dialogues, media, one_line
from .lines import Lines

DATE = r"(?P<date>\d{1,4}[./-]\d{1,2}[./-]\d{1,4})"
CLOCK = r"(?P<time>\d{1,2}[:.]\d{2}(?:[:.]\d{2})?(?:[\s\u202f\u00a0]*[AaPp]\.?\s?[Mm]\.?)?)"
ANDROID = re.compile(rf"^\u200e?{DATE},?\s{CLOCK}\s[-\u2013]\s(?P<rest>.*)$")
IOS = re.compile(rf"^\u200e?\[{DATE},?\s{CLOCK}\]\s(?P<rest>.*)$")
SENDER = re.compile(r"^(?P<name>[^:\n]{1,100}?): (?P<text>.*)$", re.S)
MARK = "\u200e"  # iOS starts system lines and media with a left-to-right mark
IOS_MEDIA = {"image": PHOTO, "video": VIDEO, "gif": GIF, "sticker": GIF, "audio": AUDIO}
DELETED = ("this message was deleted", "you deleted this message", "null")
ATTACHED = re.compile(r"^<attached: (?P<name>[^>]+)>$|^(?P<file>\S+\.\w{2,5}) \(file attached\)$")
CLOCK_PARTS = re.compile(r"(\d{1,2})[:.](\d{2})(?:[:.](\d{2}))?")
EDITED = "<This message was edited>"
PREFIXES = ("WhatsApp Chat with ", "WhatsApp Chat - ", "WhatsApp-Chat mit ", "Chat de WhatsApp con ")


def read_whatsapp(lines: Lines, context: ReadContext) -> Iterator[Parsed]:
    """A chat's dialogues; errors (bad lines, text before the first message, unreadable dates) in their place."""
    entries: list[tuple[int, str, str, list[str]]] = []  # (line, date, clock, the message's lines)
    size, cap = 0, max(DOCUMENT_BYTES, context.limit)
    for number, text in lines:
        if isinstance(text, InputError):
            yield Parsed(number, error=text)
            continue
        size += len(text) + 1
        if size > cap:
            yield context.error(number, f"a chat over {cap:,} bytes; split the export")
            return
        match = ANDROID.match(text) or IOS.match(text)
        if match:
            entries.append((number, match["date"], match["time"], [match["rest"]]))
        elif entries and text.strip():
            entries[-1][3].append(text)
        elif text.strip():
            yield context.error(number, "text before the first timestamped message", text[:200])
    order = date_order(entries)
    messages: list[Message] = []
    for number, date, clock, parts in entries:
        if sum(len(part) + 1 for part in parts) > context.limit:
            yield context.error(number, f"message over {context.limit:,} bytes (--max-line-bytes)")
            continue
        try:
            time = timestamp(date, clock, order)
        except ValueError:
            yield context.error(number, f"unreadable date '{date}, {clock}'")
            continue
        message = to_message("\n".join(parts), time, number, context.source)
        if message is not None:
            messages.append(message)
    yield from dialogues(chat_name(context, PREFIXES), messages, context, "whatsapp")


def to_message(rest: str, time: datetime, line: int, where: str) -> Message | None:
    """A message from what follows the timestamp; None for a system line or a deleted message."""
    match = SENDER.match(rest)
    if match is None:  # Android system lines have no sender: "Anna added Ben", the encryption notice
        return None
    text = match["text"].strip()
    if text.startswith(MARK) and not ios_media(text):  # iOS system lines come as the chat's own messages
        return None
    text = text.replace(MARK, "").replace(EDITED, "").strip()
    if text.lower().rstrip(".") in DELETED:
        return None
    text = ios_media(text) or android_media(text) or text
    return Message(time, match["name"].replace(MARK, "").strip(), one_line(text), line, where)


def ios_media(text: str) -> str | None:
    words = text.replace(MARK, "").strip().lower().split()
    if len(words) == 2 and words[1] == "omitted":
        return IOS_MEDIA.get(words[0], FILE)
    return None


def android_media(text: str) -> str | None:
    if text == "<Media omitted>":
        return FILE
    attached = ATTACHED.match(text)
    return media(attached["name"] or attached["file"]) if attached else None


def date_order(entries: list[tuple[int, str, str, list[str]]]) -> str:
    """ymd, dmy or mdy for the whole chat: a part over 12 decides; else a 12-hour clock means month first."""
    parts = [re.split(r"[./-]", date) for _, date, _, _ in entries]
    if any(len(part[0]) == 4 for part in parts):
        return "ymd"
    if any(int(part[0]) > 12 for part in parts):
        return "dmy"
    if any(int(part[1]) > 12 for part in parts):
        return "mdy"
    return "mdy" if any(re.search(r"[AaPp]", clock) for _, _, clock, _ in entries) else "dmy"


def timestamp(date: str, clock: str, order: str) -> datetime:
    first, second, third = (int(part) for part in re.split(r"[./-]", date))
    year, month, day = {
        "ymd": (first, second, third),
        "dmy": (third, second, first),
        "mdy": (third, first, second),
    }[order]
    hour, minute, second_ = (int(part or 0) for part in CLOCK_PARTS.match(clock).groups())  # type: ignore[union-attr]
    marker = re.sub(r"[^AaPp]", "", clock).lower()
    if marker and not 1 <= hour <= 12:
        raise ValueError(clock)
    if marker:
        hour = hour % 12 + (12 if marker == "p" else 0)
    return datetime(year + 2000 if year < 100 else year, month, day, hour, minute, second_)


def sniff_whatsapp(head: Head) -> str | None:
    """The first line timestamped as WhatsApp writes, or two of the first three (a stray first line)."""
    for pattern, kind in ((ANDROID, "Android"), (IOS, "iOS")):
        matched = [bool(pattern.match(line)) for line in head.lines[:3]]
        if matched[:1] == [True] or sum(matched) >= 2:
            shape = "'dd/mm/yyyy, hh:mm - Name: text'" if kind == "Android" else "'[dd/mm/yyyy, hh:mm:ss] Name: text'"
            return f"WhatsApp ({kind}) lines: {shape}"
    return MORE if len(head.lines) < 3 and not head.ended else None


WHATSAPP = Format(
    "whatsapp",
    "a WhatsApp chat export (.txt, Android or iOS), split into conversations by --gap",
    read_whatsapp,
    sniff=sniff_whatsapp,
)
