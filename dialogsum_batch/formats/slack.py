"""Slack workspace exports: the downloaded ``.zip`` or its unpacked folder. ``users.json`` names the people,
``channels.json`` (and ``groups.json``, ``dms.json``, ``mpims.json``) the conversations, and each conversation
is a folder of per-day JSON arrays (``2024-01-12.json``) of messages with ``user``, ``text``, ``ts``,
``thread_ts`` and ``subtype``. A thread (a parent and its replies) is one dialogue; the other messages of a
channel are split by --gap. Joins, leaves, topic and name changes and pins are dropped; bot messages are kept
under the bot's name; shared files become SAMSum's placeholders."""

from __future__ import annotations

import html
import re
import zipfile
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import IO, Any

from .base import DOCUMENT_BYTES, Format, Head, Parsed, ReadContext
from .chats import Message, chat_dialogues, listed, media, messages_of, one_line
from .jsondoc import JsonDocument, JsonProblem, read_document
from .lines import decoded_lines, open_binary

ZIP_MAGIC = b"PK\x03\x04"
INDEXES = ("users.json", "channels.json", "groups.json", "dms.json", "mpims.json", "integration_logs.json")
SYSTEM = re.compile(
    r"(channel|group)_(join|leave|topic|purpose|name|archive|unarchive)|(un)?pinned_item|bot_(add|remove)|tombstone|reminder_add|sh_room_created"
)
MARKUP = re.compile(r"<([@#!]?)([^>|]*)(?:\|([^>]*))?>")


class Export:
    """A Slack export's files, from a zip or a folder, named by their path below the export's root."""

    def __init__(self, path: str):
        self.path = path
        self.zip = zipfile.ZipFile(path) if not Path(path).is_dir() else None
        names = (
            self.zip.namelist()
            if self.zip
            else [str(p.relative_to(path).as_posix()) for p in Path(path).rglob("*.json")]
        )
        roots = sorted((str(PurePosixPath(n).parent) for n in names if PurePosixPath(n).name in INDEXES), key=len)
        self.root = roots[0] if roots else None
        prefix = "" if self.root in (None, ".") else self.root + "/"
        self.files = sorted(n[len(prefix) :] for n in names if n.startswith(prefix) and n.endswith(".json"))

    def close(self) -> None:
        if self.zip:
            self.zip.close()

    def channels(self) -> list[str]:
        return sorted({PurePosixPath(n).parts[0] for n in self.files if len(PurePosixPath(n).parts) == 2})

    def days(self, channel: str) -> list[str]:
        return [n for n in self.files if PurePosixPath(n).parts[0] == channel and len(PurePosixPath(n).parts) == 2]

    def open(self, name: str) -> IO[bytes]:
        full = name if self.root in (None, ".") else f"{self.root}/{name}"
        if self.zip is None:
            return open_binary(str(Path(self.path) / full))
        info = self.zip.getinfo(full)
        if info.file_size > DOCUMENT_BYTES:
            raise ValueError(f"{info.file_size:,} bytes unpacked, over the {DOCUMENT_BYTES:,}-byte limit")
        return self.zip.open(info)


def read_slack(lines: Any, context: ReadContext) -> Iterator[Parsed]:
    if context.stdin:
        yield context.error(None, "a Slack export cannot come on stdin: give the path of its .zip or folder")
        return
    try:
        export = Export(context.path)
    except zipfile.BadZipFile as exc:
        yield context.error(None, f"not a readable zip archive ({exc}); formats tried: slack")
        return
    try:
        if export.root is None:
            yield context.error(None, "no users.json or channels.json: not a Slack export (formats tried: slack)")
            return
        users, errors = user_names(export, context)
        yield from errors
        for channel in export.channels():
            found = (item for day in export.days(channel) for item in day_messages(export, day, users, context))
            yield from chat_dialogues(channel, found, context, "slack")
    finally:
        export.close()


def member(export: Export, name: str, context: ReadContext) -> tuple[JsonDocument | Parsed, ReadContext]:
    """A file of the export as a JSON document, and the context its errors are named in (FILE:member:LINE)."""
    inner = replace(context, path=f"{context.source}:{name}")
    try:
        with export.open(name) as stream:
            return read_document(decoded_lines(stream, inner.source, context.limit), inner), inner
    except (KeyError, ValueError) as exc:
        return inner.error(None, f"cannot read ({exc})"), inner


def user_names(export: Export, context: ReadContext) -> tuple[dict[str, str], list[Parsed]]:
    """users.json as id -> the name people see (display name, else real name, else handle)."""
    if "users.json" not in export.files:
        return {}, []
    document, inner = member(export, "users.json", context)
    if isinstance(document, Parsed):
        return {}, [document]
    names: dict[str, str] = {}
    try:
        for _, user in document.items(0):
            if isinstance(user, dict) and isinstance(user.get("id"), str):
                names[user["id"]] = person(user) or user["id"]
    except JsonProblem as problem:
        return names, [inner.error(problem.line, problem.reason)]
    return names, []


def person(user: dict[str, Any]) -> str:
    profile = user.get("profile") if isinstance(user.get("profile"), dict) else {}
    for name in (profile.get("display_name"), profile.get("real_name"), user.get("real_name"), user.get("name")):
        if isinstance(name, str) and name.strip():
            return one_line(name)
    return ""


def day_messages(export: Export, day: str, users: dict[str, str], context: ReadContext) -> Iterator[Message | Parsed]:
    document, inner = member(export, day, context)
    if isinstance(document, Parsed):
        yield document
        return
    convert = lambda item, line, where: to_message(item, line, where, users)  # noqa: E731
    yield from messages_of(document.items(0), convert, inner)


def to_message(item: dict[str, Any], line: int, where: str, users: dict[str, str]) -> Message | str | None:
    subtype = str(item.get("subtype") or "")
    if SYSTEM.fullmatch(subtype):
        return None
    try:
        time = datetime.fromtimestamp(float(item.get("ts")), timezone.utc)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return f"message without a readable 'ts' ({str(item.get('ts'))[:40]})"
    shared = [f for f in listed(item.get("files")) if isinstance(f, dict)]
    files = [media(str(f.get("mimetype") or f.get("name") or "")) for f in shared]
    text = one_line(" ".join([plain(str(item.get("text") or ""), users), *files]))
    if not text:
        return None
    ts, thread = str(item.get("ts")), item.get("thread_ts")
    threaded = isinstance(thread, str) and (thread != ts or bool(item.get("reply_count") or item.get("replies")))
    return Message(time, speaker(item, users), text, line, where, thread if threaded else None)


def speaker(item: dict[str, Any], users: dict[str, str]) -> str:
    user = item.get("user")
    if isinstance(user, str) and user in users:
        return users[user]
    profile = item.get("user_profile") if isinstance(item.get("user_profile"), dict) else {}
    bot = item.get("bot_profile") if isinstance(item.get("bot_profile"), dict) else {}
    for name in (profile.get("display_name"), profile.get("real_name"), item.get("username"), bot.get("name"), user):
        if isinstance(name, str) and name.strip():
            return one_line(name)
    return "bot" if item.get("bot_id") else "unknown"


def plain(text: str, users: dict[str, str]) -> str:
    """Slack's markup as people read it: <@U1> -> @Anna, <#C1|general> -> #general, <url|label> -> label."""

    def readable(match: re.Match[str]) -> str:
        kind, target, label = match.groups()
        if kind == "@":
            return "@" + (label or users.get(target, target))
        if kind == "#":
            return "#" + (label or target)
        if kind == "!":
            return "@" + (label or target.split("^")[0])
        return label or target.removeprefix("mailto:")

    return html.unescape(MARKUP.sub(readable, text))


def sniff_slack(head: Head) -> str | None:
    if head.folder:  # the export's files at the top, or one folder down (a zip unpacked into a folder of its own)
        found = [
            name for name in INDEXES[:2] if any(Path(head.path).glob(name)) or any(Path(head.path).glob(f"*/{name}"))
        ]
        return f"a folder holding {' and '.join(found)} (a Slack export)" if found else None
    return "a zip archive (a Slack export's download)" if head.magic.startswith(ZIP_MAGIC) else None


SLACK = Format(
    "slack",
    "a Slack workspace export (.zip or its folder); threads whole, channels split into conversations by --gap",
    read_slack,
    suffixes=(".zip",),
    sniff=sniff_slack,
    reads_path=True,
)
