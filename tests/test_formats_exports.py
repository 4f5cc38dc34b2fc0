"""Chat exports of the messaging apps, shaped as their public documentation and real exports show: Telegram
Desktop's result.json (one chat, a whole account), DiscordChatExporter JSON, Slack workspace exports (zip and
folder, threads, joins, bots, files). Each becomes conversations; hostile variants end as errors in place."""

from __future__ import annotations

import gzip
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import read_jsonl

from dialogsum_batch.cli import main
from dialogsum_batch.inference.records import BadRecord, Record, read_records


def run(args, stdin=None):
    return CliRunner().invoke(main, args, input=stdin, catch_exceptions=False)


def read(path, **options) -> list[Record | BadRecord]:
    return list(read_records([str(path)], **options))


def dialogues(items) -> list[str]:
    return [item.dialogue for item in items if isinstance(item, Record)]


def errors(items) -> list[str]:
    return [str(item.error) for item in items if isinstance(item, BadRecord)]


# ---------------------------------------------------------------------------- Telegram


def telegram_message(n, when, sender, text, **extra):
    return {
        "id": n,
        "type": "message",
        "date": when,
        "date_unixtime": "0",
        "from": sender,
        "from_id": "user1",
        "text": text,
        "text_entities": [],
        **extra,
    }


TELEGRAM_CHAT = {
    "name": "Anna",
    "type": "personal_chat",
    "id": 4242,
    "messages": [
        {"id": 1, "type": "service", "date": "2024-01-12T21:00:00", "actor": "Anna", "action": "phone_call"},
        telegram_message(2, "2024-01-12T21:15:03", "Anna", "Are we still on for tomorrow?"),
        telegram_message(3, "2024-01-12T21:16:00", "Ben", ["Yes, see ", {"type": "link", "text": "the map"}, "!"]),
        telegram_message(4, "2024-01-12T21:16:30", "Ben", "", photo="photos/photo_1.jpg", width=1, height=1),
        telegram_message(5, "2024-01-12T21:17:00", None, "hi from a deleted account"),
        telegram_message(6, "2024-01-13T10:00:00", "Anna", "", media_type="sticker", sticker_emoji="👍"),
    ],
}


@pytest.mark.parametrize("indent", [None, 1])
def test_telegram_chat_export(fake_backend, tmp_path, indent):
    path = tmp_path / "result.json"
    path.write_text(json.dumps(TELEGRAM_CHAT, indent=indent, ensure_ascii=False), encoding="utf-8")
    result = run(["-m", "x", str(path), "--keep-fields", "dialogue"])
    assert result.exit_code == 0, result.stderr
    first, second = read_jsonl(result.stdout)
    assert first["dialogue"] == (
        "Anna: Are we still on for tomorrow?\nBen: Yes, see the map!\nBen: <file_photo>\n"
        "Deleted Account: hi from a deleted account"
    )
    assert (first["id"], first["start"], first["end"]) == (
        "Anna/2024-01-12T21:15:03",
        "2024-01-12T21:15:03",
        "2024-01-12T21:17:00",
    )
    assert second["dialogue"] == "Anna: <file_gif>"
    assert "read as telegram: a Telegram Desktop export" in result.stderr


def test_telegram_account_export_reads_every_chat(tmp_path):
    other = {
        "name": "Work",
        "type": "private_group",
        "id": 7,
        "messages": [telegram_message(1, "2024-02-01T09:00:00", "Carl", "standup?")],
    }
    account = {
        "about": "Here is the data you requested.",
        "personal_information": {"first_name": "Me"},
        "chats": {"about": "...", "list": [TELEGRAM_CHAT, other]},
    }
    path = tmp_path / "result.json.gz"
    path.write_bytes(gzip.compress(json.dumps(account, indent=1).encode()))
    items = read(path)
    assert [item.id for item in items] == [
        "Anna/2024-01-12T21:15:03",
        "Anna/2024-01-13T10:00:00",
        "Work/2024-02-01T09:00:00",
    ]


def test_a_cut_telegram_export_keeps_the_messages_before_the_cut(tmp_path):
    text = json.dumps(TELEGRAM_CHAT, indent=1)
    path = tmp_path / "result.json"
    path.write_text(text[: text.index('"hi from')], encoding="utf-8")
    items = read(path)
    assert dialogues(items)[0].startswith("Anna: Are we still on") and len(errors(items)) == 1
    assert errors(items)[0].startswith(f"{path}:") and "invalid JSON" in errors(items)[0]


def test_telegram_messages_that_are_not_messages_are_errors_at_their_line(tmp_path):
    chat = {
        **TELEGRAM_CHAT,
        "messages": [
            3,
            {"type": "message", "date": "yesterday", "text": "x"},
            telegram_message(9, "2024-01-12T21:15:03", "Anna", "ok"),
        ],
    }
    path = tmp_path / "result.json"
    path.write_text(json.dumps(chat, indent=1), encoding="utf-8")
    items = read(path, fmt="telegram")
    assert dialogues(items) == ["Anna: ok"]
    assert [e.split(": ", 1)[1] for e in errors(items)] == [
        "expected a message object, got int",
        "message without a readable 'date' (yesterday)",
    ]


# ---------------------------------------------------------------------------- Discord


def discord_message(n, when, name, content, kind="Default", **extra):
    author = {"id": str(n), "name": name.lower(), "discriminator": "0000", "nickname": name, "isBot": False}
    return {
        "id": str(n),
        "type": kind,
        "timestamp": when,
        "timestampEdited": None,
        "isPinned": False,
        "content": content,
        "author": author,
        "attachments": [],
        "embeds": [],
        "stickers": [],
        "reactions": [],
        "mentions": [],
        **extra,
    }


def discord_export(messages, channel_type="GuildTextChat"):
    return {
        "guild": {"id": "1", "name": "Friends", "iconUrl": ""},
        "channel": {
            "id": "2",
            "type": channel_type,
            "categoryId": "3",
            "category": "Text",
            "name": "general",
            "topic": None,
        },
        "dateRange": {"after": None, "before": None},
        "exportedAt": "2024-02-01T00:00:00+00:00",
        "messages": messages,
        "messageCount": len(messages),
    }


DISCORD_MESSAGES = [
    discord_message(1, "2024-01-12T21:00:00.123+00:00", "Bob", "", kind="GuildMemberJoin"),
    discord_message(2, "2024-01-12T21:15:03.1234567+01:00", "Anna", "movie tonight?"),
    discord_message(
        3,
        "2024-01-12T21:16:00+01:00",
        "Ben",
        "sure",
        kind="Reply",
        attachments=[{"id": "9", "url": "u", "fileName": "poster.png", "fileSizeBytes": 1}],
    ),
    discord_message(4, "2024-01-12T21:17:00+01:00", "Ben", "", kind="ChannelPinnedMessage"),
    discord_message(5, "2024-01-13T08:00:00+01:00", "Anna", "good morning"),
]


def test_discord_export(fake_backend, tmp_path):
    path = tmp_path / "Friends - general [2].json"
    path.write_text(json.dumps(discord_export(DISCORD_MESSAGES), indent=2), encoding="utf-8")
    result = run(["-m", "x", str(path), "--keep-fields", "*"])
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(result.stdout)
    assert [row["dialogue"] for row in rows] == ["Anna: movie tonight?\nBen: sure <file_photo>", "Anna: good morning"]
    assert rows[0]["id"] == "Friends/general/2024-01-12T21:15:03+01:00" and rows[0]["chat"] == "Friends/general"
    assert "read as discord: a DiscordChatExporter JSON export" in result.stderr


def test_a_discord_thread_is_one_dialogue_whatever_its_gaps(tmp_path):
    path = tmp_path / "thread.json"
    path.write_text(json.dumps(discord_export(DISCORD_MESSAGES, "GuildPublicThread")), encoding="utf-8")
    (record,) = read(path)
    assert record.meta["thread"] == "2" and record.dialogue.endswith("Anna: good morning")


# ---------------------------------------------------------------------------- Slack

USERS = [
    {"id": "U1", "name": "anna", "real_name": "Anna Smith", "profile": {"display_name": "Anna", "real_name": "A S"}},
    {"id": "U2", "name": "ben", "real_name": "Ben Jones", "profile": {"display_name": "", "real_name": "Ben Jones"}},
]
CHANNELS = [{"id": "C1", "name": "general", "created": 1, "members": ["U1", "U2"]}]
T0 = 1705093200.0  # 2024-01-12T21:00:00Z


def slack(ts, **fields):
    return {"type": "message", "ts": f"{T0 + ts:.6f}", **fields}


DAY1 = [
    slack(0, subtype="channel_join", user="U2", text="<@U2> has joined the channel"),
    slack(
        60,
        user="U1",
        text="Lunch &amp; a walk? <@U2> see <https://example.com|the place>",
        thread_ts=f"{T0 + 60:.6f}",
        reply_count=2,
    ),
    slack(120, user="U2", text="yes!", thread_ts=f"{T0 + 60:.6f}", parent_user_id="U1"),
    slack(
        180, user="U1", text="", files=[{"id": "F1", "name": "map.png", "mimetype": "image/png"}], subtype="file_share"
    ),
    slack(240, subtype="bot_message", bot_id="B1", username="deploybot", text="deployed v2"),
]
DAY2 = [
    slack(86400 + 7200, user="U2", text="after lunch", thread_ts=f"{T0 + 60:.6f}", parent_user_id="U1"),
    slack(86400, user="U1", text="morning <#C1|general>"),
]


def slack_files(prefix=""):
    return {
        f"{prefix}users.json": USERS,
        f"{prefix}channels.json": CHANNELS,
        f"{prefix}general/2024-01-12.json": DAY1,
        f"{prefix}general/2024-01-13.json": DAY2,
    }


def slack_zip(path: Path, files: dict, raw: dict | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in files.items():
            archive.writestr(name, json.dumps(value, indent=4))
        for name, data in (raw or {}).items():
            archive.writestr(name, data)
    return path


EXPECTED_SLACK = [
    (
        "general/2024-01-12T21:01:00Z",
        "Anna: Lunch & a walk? @Ben Jones see the place\nBen Jones: yes!\nBen Jones: after lunch",
    ),
    ("general/2024-01-12T21:03:00Z", "Anna: <file_photo>\ndeploybot: deployed v2"),
    ("general/2024-01-13T21:00:00Z", "Anna: morning #general"),
]


@pytest.mark.parametrize("prefix", ["", "Acme Slack export Jan 1 2024 - Feb 1 2024/"])
def test_slack_zip_export_threads_and_channel_runs(fake_backend, tmp_path, prefix):
    path = slack_zip(tmp_path / "Acme Slack export.zip", slack_files(prefix))
    result = run(["-m", "x", str(path), "--keep-fields", "dialogue"])
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(result.stdout)
    assert [(row["id"], row["dialogue"]) for row in rows] == EXPECTED_SLACK
    assert rows[0]["thread"] == f"{T0 + 60:.6f}"
    assert rows[0]["source"] == f"{path}:general/2024-01-12.json:9"  # the parent: 2nd item, 7 lines each


def test_slack_folder_export(fake_backend, tmp_path):
    root = tmp_path / "export"
    for name, value in slack_files().items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(json.dumps(value), encoding="utf-8")
    result = run(["-m", "x", str(root)])
    assert result.exit_code == 0, result.stderr
    assert [row["id"] for row in read_jsonl(result.stdout)] == [expected for expected, _ in EXPECTED_SLACK]
    assert "a folder holding users.json and channels.json (a Slack export)" in result.stderr


def test_hostile_slack_members_are_errors_named_by_member_and_line(tmp_path):
    raw = {
        "random/2024-01-12.json": '[\n{"type": "message", "ts": "1.0", "user": "U1", "text": "hi"},\n{"ty',
        "random/2024-01-13.json": "[" * 50_000,
        "random/2024-01-14.json": b'[{"text": "\xff"}]',
    }
    path = slack_zip(tmp_path / "e.zip", slack_files(), raw)
    items = read(path)
    assert [error.split(f"{path}:", 1)[1] for error in errors(items)] == [
        "random/2024-01-12.json:3: invalid JSON (Unterminated string starting at)",
        "random/2024-01-13.json:1: JSON nested too deeply to read",
        "random/2024-01-14.json:1: invalid UTF-8 at byte 11",
    ]
    assert "Anna: hi" in dialogues(items)


def test_not_a_slack_export_is_one_line_naming_what_was_tried(fake_backend, tmp_path):
    path = tmp_path / "photos.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.txt", "x")
    result = run(["-m", "x", str(path)])
    assert result.exit_code == 1
    assert f"{path}: no users.json or channels.json: not a Slack export (formats tried: slack)" in result.stderr
    folder = tmp_path / "empty"
    folder.mkdir()
    assert errors(read(folder)) == [f"{folder}: a folder, and no format reads it (formats tried: slack)"]
    assert errors(read(folder, fmt="jsonl")) == [f"{folder}: a folder, which jsonl cannot read"]


def test_a_folder_holding_the_unpacked_export_one_level_down_is_read(tmp_path):
    root = tmp_path / "download" / "Acme Slack export"
    for name, value in slack_files().items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(json.dumps(value), encoding="utf-8")
    assert [item.id for item in read(tmp_path / "download")] == [expected for expected, _ in EXPECTED_SLACK]


def test_one_day_of_a_slack_channel_names_the_flag(fake_backend, tmp_path):
    path = tmp_path / "2024-01-12.json"
    path.write_text(json.dumps(DAY1, indent=4), encoding="utf-8")
    result = run(["-m", "x", str(path)])
    assert result.exit_code == 1
    assert f"{path}:2: one day of a Slack export: give the export's .zip or folder (--format slack)" in result.stderr


def test_a_time_without_offset_among_offsets_is_read_as_utc(tmp_path):
    messages = [
        discord_message(1, "2024-01-12T21:15:00+00:00", "Anna", "first"),
        discord_message(2, "2024-01-12T21:16:00", "Ben", "second"),
        discord_message(3, "2024-01-12T21:17:00Z", "Anna", "third"),
    ]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(discord_export(messages)), encoding="utf-8")
    (record,) = read(path)
    assert record.dialogue == "Anna: first\nBen: second\nAnna: third"


def bad_line_after(document) -> bytes:
    """``document`` as indented JSON, then a line that is not UTF-8 after its closing brace."""
    return json.dumps(document, indent=1).encode() + b"\n\xff\n"


@pytest.mark.parametrize(
    "name, content",
    [
        ("discord.json", bad_line_after(discord_export(DISCORD_MESSAGES))),
        ("result.json", bad_line_after(TELEGRAM_CHAT)),
        ("account.json", bad_line_after({"about": "x", "chats": {"list": [TELEGRAM_CHAT]}})),
    ],
)
def test_a_bad_line_after_an_exports_messages_is_an_error_not_dropped(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    items = read(path)
    last = content.count(b"\n")  # the bad line is the file's last
    assert errors(items) == [f"{path}:{last}: invalid UTF-8 at byte 0"]
    assert dialogues(items)  # the messages before it still flow


def test_a_bad_line_after_a_slack_days_messages_is_an_error_not_dropped(tmp_path):
    raw = {"general/2024-01-14.json": json.dumps(DAY2, indent=1).encode() + b"\n\xff\n"}
    path = slack_zip(tmp_path / "e.zip", slack_files(), raw)
    items = read(path)
    (error,) = errors(items)
    assert error.startswith(f"{path}:general/2024-01-14.json:") and error.endswith("invalid UTF-8 at byte 0")
    assert [item.id for item in items if isinstance(item, Record)] == [expected for expected, _ in EXPECTED_SLACK]
