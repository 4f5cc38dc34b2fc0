"""DiscordChatExporter JSON exports: ``guild``, ``channel`` and ``messages[]`` with ``author`` (``nickname`` or
``name``), ``timestamp``, ``content``, ``type``, ``attachments`` and ``stickers``. Only ``Default`` and ``Reply``
messages are said by people: joins, pins, calls, renames and thread notices are dropped. A thread is exported
as a channel of its own, and is then one dialogue whatever its gaps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .base import Format, Parsed, ReadContext
from .chats import GIF, Message, chat_dialogues, listed, media, messages_of, one_line, parse_time
from .jsondoc import document_key, sniff_shape
from .lines import Lines

SAID = ("Default", "Reply")


def read_discord(lines: Lines, context: ReadContext) -> Iterator[Parsed]:
    opened = document_key(lines, context, "messages")
    if isinstance(opened, Parsed):
        yield opened
        return
    document, head, messages = opened
    if messages is None:
        yield context.error(1, "no 'messages' list: not a DiscordChatExporter JSON export (tried discord)")
        return
    channel = head.get("channel") if isinstance(head.get("channel"), dict) else {}
    thread = str(channel.get("id", "thread")) if "Thread" in str(channel.get("type", "")) else None
    convert = lambda item, line, where: to_message(item, line, where, thread)  # noqa: E731
    found = messages_of(document.items(messages), convert, context)
    yield from chat_dialogues(chat_label(head), found, context, "discord")


def chat_label(head: dict[str, Any]) -> str:
    guild = head.get("guild") if isinstance(head.get("guild"), dict) else {}
    channel = head.get("channel") if isinstance(head.get("channel"), dict) else {}
    name = str(channel.get("name") or channel.get("id") or "channel")
    server = str(guild.get("name") or "")
    return name if not server or server == "Direct Messages" else f"{server}/{name}"


def to_message(item: dict[str, Any], line: int, where: str, thread: str | None) -> Message | str | None:
    if item.get("type", "Default") not in SAID:
        return None
    try:
        time = parse_time(item.get("timestamp"))
    except ValueError:
        return f"message without a readable 'timestamp' ({str(item.get('timestamp'))[:40]})"
    author = item.get("author") if isinstance(item.get("author"), dict) else {}
    speaker = one_line(str(author.get("nickname") or author.get("name") or "unknown"))
    parts = [str(item.get("content") or "")]
    parts += [media(str(a.get("fileName", ""))) for a in listed(item.get("attachments")) if isinstance(a, dict)]
    parts += [GIF for _ in listed(item.get("stickers"))]
    text = one_line(" ".join(part for part in parts if part))
    return Message(time, speaker, text, line, where, thread) if text else None


DISCORD = Format(
    "discord",
    "a DiscordChatExporter JSON export (one channel or thread), split into conversations by --gap",
    read_discord,
    sniff=lambda head: sniff_shape(head, "discord"),
)
