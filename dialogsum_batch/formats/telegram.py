"""Telegram Desktop exports (``Export chat history`` as JSON: ``result.json``): one chat (``name``, ``type``,
``messages``) or a whole account (``chats.list[]``). A message's ``text`` is a string or a list of strings and
entity objects (links, bold, mentions) holding ``text``; ``service`` messages (joins, pins, calls) are dropped;
photos, stickers, voice and files become SAMSum's placeholders."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .base import Format, Parsed, ReadContext
from .chats import AUDIO, FILE, GIF, PHOTO, VIDEO, Message, chat_dialogues, join_text, media, messages_of, one_line
from .chats import parse_time as iso_time
from .jsondoc import JsonDocument, JsonProblem, document_key, sniff_shape
from .lines import Lines

MEDIA_TYPES = {
    "animation": GIF,
    "sticker": GIF,
    "video_file": VIDEO,
    "video_message": VIDEO,
    "voice_message": AUDIO,
    "audio_file": AUDIO,
}


def read_telegram(lines: Lines, context: ReadContext) -> Iterator[Parsed]:
    opened = document_key(lines, context, "messages")
    if isinstance(opened, Parsed):
        yield opened
        return
    document, head, messages = opened
    if messages is None and "chats" not in head:
        yield context.error(1, "no 'messages' list and no 'chats': not a Telegram Desktop export (tried telegram)")
        return
    if messages is not None:
        yield from chat_dialogues(
            chat_label(head), messages_of(document.items(messages), to_message, context), context, "telegram"
        )
    else:
        yield from account_chats(document, context)


def account_chats(document: JsonDocument, context: ReadContext) -> Iterator[Parsed]:
    """A whole account's export: each chat of ``chats.list`` in turn, its messages at the chat's line."""
    try:
        _, chats = document.until_key(0, "chats")
        _, listed = document.until_key(chats or 0, "list")
        for line, chat in document.items(listed if listed is not None else 0):
            if not isinstance(chat, dict) or not isinstance(chat.get("messages"), list):
                yield context.error(line, "a chat without a 'messages' list")
                continue
            found = messages_of(((line, m) for m in chat["messages"]), to_message, context)
            yield from chat_dialogues(chat_label(chat), found, context, "telegram")
    except JsonProblem as problem:
        yield context.error(problem.line, problem.reason)


def chat_label(chat: dict[str, Any]) -> str:
    name = chat.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()
    return "Saved Messages" if chat.get("type") == "saved_messages" else f"chat {chat.get('id', '?')}"


def to_message(item: dict[str, Any], line: int, where: str) -> Message | str | None:
    if item.get("type") != "message":
        return None  # service: joins, pins, calls, title changes
    try:
        time = iso_time(item.get("date"))
    except ValueError:
        return f"message without a readable 'date' ({str(item.get('date'))[:40]})"
    text = one_line(join_text(item.get("text")))
    placeholder = attachment(item)
    text = f"{text} {placeholder}".strip() if placeholder else text
    if not text:
        return None  # nothing said (an empty message, a poll or game the export leaves out)
    speaker = item.get("from") if isinstance(item.get("from"), str) else None
    return Message(time, one_line(speaker or "") or "Deleted Account", text, line, where)


def attachment(item: dict[str, Any]) -> str | None:
    if "photo" in item:
        return PHOTO
    if str(item.get("media_type")) in MEDIA_TYPES:
        return MEDIA_TYPES[str(item["media_type"])]
    if isinstance(item.get("file"), str):
        return media(str(item.get("file_name") or item["file"]))
    if any(key in item for key in ("poll", "location_information", "contact_information")):
        return FILE
    return None


TELEGRAM = Format(
    "telegram",
    "a Telegram Desktop export (result.json: one chat or a whole account), split into conversations by --gap",
    read_telegram,
    sniff=lambda head: sniff_shape(head, "telegram"),
)
