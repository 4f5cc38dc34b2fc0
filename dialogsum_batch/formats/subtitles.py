"""Subtitles: SubRip (.srt) and WebVTT (.vtt). Cues become turns: a speaker label starts one (``Name: text``,
``- Name: text``, WebVTT's ``<v Name>``), an unlabelled line continues the turn before it (``Speaker`` when no
label came yet). Tags (``<i>``, ``{\\an8}``) and whole-line sound notes (``[door slams]``) are dropped; the
cues split into dialogues where a silence exceeds --gap, their times written as offsets (``00:01:02.500``)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

from ..errors import InputError
from .base import MORE, Format, Head, Parsed, ReadContext
from .chats import Message, chat_name, dialogues, one_line
from .lines import Lines

STAMP = r"(?:(\d{1,3}):)?(\d{1,2}):(\d{2})[,.](\d{1,3})"
TIMING = re.compile(rf"^\s*{STAMP}\s*-->\s*{STAMP}(?:\s.*)?$")
VOICE = re.compile(r"<v(?:\.[^\s>]+)*\s+([^>]+)>")
LABEL = re.compile(r"^-?\s*([A-Z][\w.' -]{0,30}?):\s+(\S.*)$")
TAGS = re.compile(r"<[^>]*>|\{\\[^}]*\}")
NOTE_LINE = re.compile(r"^[\[(♪].*[\])♪]$")
ZERO = datetime(2000, 1, 1)  # offsets are carried as times from this instant
UNKNOWN = "Speaker"


def read_subtitles(lines: Lines, context: ReadContext, fmt: str) -> Iterator[Parsed]:
    messages: list[Message] = []
    for item in cues(lines, context):
        if isinstance(item, Parsed):
            yield item
            continue
        line, start, texts = item
        for text in texts:
            add_turn(messages, text, start, line, context)
    yield from dialogues(chat_name(context), messages, context, fmt, stamp=offset)


def cues(lines: Lines, context: ReadContext) -> Iterator[tuple[int, datetime, list[str]] | Parsed]:
    """Each cue's first line, start and text lines; a block without a timing line is an error (WebVTT's header,
    NOTE, STYLE and REGION blocks are skipped)."""
    block: list[tuple[int, str]] = []
    for number, text in itertools.chain(lines, [(0, "")]):  # a blank line at the end closes the last cue
        if isinstance(text, InputError):
            yield Parsed(number, error=text)
        elif text.strip():
            block.append((number, text.strip()))
        elif block:
            yield from cue(block, context)
            block = []


def cue(block: list[tuple[int, str]], context: ReadContext) -> Iterator[tuple[int, datetime, list[str]] | Parsed]:
    first = block[0][1]
    if first.startswith(("WEBVTT", "NOTE", "STYLE", "REGION")) or first.lstrip("\ufeff").startswith("WEBVTT"):
        return
    at = next((i for i, (_, text) in enumerate(block[:2]) if TIMING.match(text)), None)
    if at is None:
        yield context.error(block[0][0], "a cue without a timing line (00:00:01,000 --> 00:00:02,000)", first[:200])
        return
    groups = TIMING.match(block[at][1]).groups()  # type: ignore[union-attr]
    hours, minutes, seconds = (int(part or 0) for part in groups[:3])
    start = ZERO + timedelta(hours=hours, minutes=minutes, seconds=seconds, milliseconds=int(groups[3].ljust(3, "0")))
    yield block[0][0], start, [text for _, text in block[at + 1 :]]


def add_turn(messages: list[Message], text: str, start: datetime, line: int, context: ReadContext) -> None:
    """A labelled line starts a turn; another continues the last turn unless a silence (--gap) came between."""
    voice = VOICE.search(text)
    speaker = voice.group(1).strip() if voice else None
    text = one_line(TAGS.sub("", text)).strip()
    if not speaker and (label := LABEL.match(text)):
        speaker, text = label.group(1).strip(), label.group(2)
    text = text.lstrip("- ").strip()
    if not text or NOTE_LINE.match(text):
        return
    last = messages[-1] if messages else None
    close = last is not None and start - last.time <= timedelta(minutes=context.chats.gap_minutes)
    if last is not None and close and speaker in (None, last.speaker) and len(last.text) + len(text) < context.limit:
        messages[-1] = replace(last, text=f"{last.text} {text}")
    else:
        where = context.source
        messages.append(Message(start, speaker or (last.speaker if last else UNKNOWN), text, line, where))


def offset(time: datetime) -> str:
    total = time - ZERO
    hours, rest = divmod(int(total.total_seconds()), 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}.{total.microseconds // 1000:03d}"


def sniff_srt(head: Head) -> str | None:
    if head.lines and TIMING.match(head.lines[0]):
        return "SubRip cues (00:00:01,000 --> 00:00:02,000)"
    if not head.lines or not head.lines[0].strip().isdigit():
        return None
    if len(head.lines) < 2:
        return None if head.ended else MORE
    return "SubRip cues (a number, then 00:00:01,000 --> 00:00:02,000)" if TIMING.match(head.lines[1]) else None


def sniff_vtt(head: Head) -> str | None:
    return "a WEBVTT header" if head.lines and head.lines[0].lstrip("\ufeff").startswith("WEBVTT") else None


SRT = Format(
    "srt",
    "SubRip subtitles; speaker labels (Name: text) become turns, split into dialogues by --gap",
    lambda lines, context: read_subtitles(lines, context, "srt"),
    suffixes=(".srt",),
    sniff=sniff_srt,
)
VTT = Format(
    "vtt",
    "WebVTT subtitles; <v Name> voices and Name: labels become turns, split into dialogues by --gap",
    lambda lines, context: read_subtitles(lines, context, "vtt"),
    suffixes=(".vtt",),
    sniff=sniff_vtt,
)
