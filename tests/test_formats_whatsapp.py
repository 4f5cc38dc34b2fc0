"""WhatsApp exports into conversations: Android and iOS lines, locales and clocks, multi-line messages, media,
system lines, and the time-gap split (every message in exactly one dialogue, stable ids, time spans)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import read_jsonl

from dialogsum_batch.cli import main
from dialogsum_batch.config import ChatSettings
from dialogsum_batch.inference.records import BadRecord, Record, read_records

ANDROID = """\
12/01/2024, 21:15 - Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, \
can read or listen to them. Tap to learn more.
12/01/2024, 21:15 - Anna created group "Party"
12/01/2024, 21:15 - Anna: Are we still on for tomorrow?
12/01/2024, 21:16 - Ben: Yes!
I'll bring the cake

and candles
12/01/2024, 21:17 - Ben: <Media omitted>
12/01/2024, 21:18 - Anna added Carl
12/01/2024, 21:20 - Carl: IMG-20240112-WA0003.jpg (file attached)
13/01/2024, 09:02 - Carl: Morning all
13/01/2024, 09:03 - Anna: This message was deleted
13/01/2024, 18:40 - Ben: See you <This message was edited>
"""

IOS = """\
\u200e[1/12/24, 9:15:03\u202fPM] Party: \u200eMessages and calls are end-to-end encrypted.
[1/12/24, 9:15:10\u202fPM] Anna: Are we still on for tomorrow?
[1/12/24, 9:16:00\u202fPM] Ben: Yes!
\u200e[1/12/24, 9:17:00\u202fPM] Ben: \u200eimage omitted
\u200e[1/12/24, 9:18:00\u202fPM] Party: \u200eAnna added Carl
[1/13/24, 12:05:00\u202fAM] Carl: late night
\u200e[1/13/24, 12:06:00\u202fAM] Anna: \u200eThis message was deleted.
"""

GERMAN = """\
12.01.24, 21:15 - Anna: Hallo
12.01.24, 21:16 - Ben: Hi: wie geht's?
"""


def write(path: Path, text: str | bytes) -> str:
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return str(path)


def read(path: str, **options) -> list[Record | BadRecord]:
    return list(read_records([path], **options))


def records(items) -> list[Record]:
    assert all(isinstance(item, Record) for item in items), items
    return items


def run(args, stdin=None):
    return CliRunner().invoke(main, args, input=stdin, catch_exceptions=False)


def test_android_export_splits_by_gap_and_drops_system_lines(tmp_path):
    path = write(tmp_path / "WhatsApp Chat with Party.txt", ANDROID)
    first, second, third = records(read(path))
    assert first.dialogue == (
        "Anna: Are we still on for tomorrow?\nBen: Yes! I'll bring the cake and candles\n"
        "Ben: <file_other>\nCarl: <file_photo>"
    )
    assert first.id == "Party/2024-01-12T21:15:00"
    assert dict(first.meta) == {
        "chat": "Party",
        "start": "2024-01-12T21:15:00",
        "end": "2024-01-12T21:20:00",
        "turns": 4,
        "format": "whatsapp",
        "source": f"{path}:3",
    }
    assert (second.dialogue, second.id) == ("Carl: Morning all", "Party/2024-01-13T09:02:00")
    assert third.dialogue == "Ben: See you"  # edited marker gone; a lone message is a dialogue of one turn


def test_ios_export_with_month_first_dates_and_a_12_hour_clock(tmp_path):
    path = write(tmp_path / "_chat.txt", IOS)
    first, second = records(read(path, chats=ChatSettings(gap_minutes=60)))
    assert first.dialogue == "Anna: Are we still on for tomorrow?\nBen: Yes!\nBen: <file_photo>"
    assert (first.meta["start"], first.meta["end"]) == ("2024-01-12T21:15:10", "2024-01-12T21:17:00")
    assert second.dialogue == "Carl: late night" and second.meta["start"] == "2024-01-13T00:05:00"
    assert first.meta["chat"] == tmp_path.name  # _chat.txt (iOS) is named by its folder


def test_dotted_dates_two_digit_years_and_colons_in_text(tmp_path):
    (record,) = records(read(write(tmp_path / "g.txt", GERMAN)))
    assert record.dialogue == "Anna: Hallo\nBen: Hi: wie geht's?" and record.meta["start"] == "2024-01-12T21:15:00"


@pytest.mark.parametrize("gap, sizes", [(0.5, [1, 1, 1]), (2, [2, 1]), (30, [3])])
def test_gap_option_sets_where_conversations_split(fake_backend, tmp_path, gap, sizes):
    chat = "01/02/2024, 10:00 - A: one\n01/02/2024, 10:01 - B: two\n01/02/2024, 10:05 - A: three\n"
    path = write(tmp_path / "chat.txt", chat)
    result = run(["-m", "x", path, "--gap", str(gap)])
    assert result.exit_code == 0, result.stderr
    assert [row["turns"] for row in read_jsonl(result.stdout)] == sizes


def test_every_message_lands_in_exactly_one_dialogue(tmp_path):
    lines = [
        f"0{1 + day}/03/2024, {hour:02d}:{minute:02d} - P{n % 3}: m{n}"
        for n, (day, hour, minute) in enumerate(
            (day, hour, minute) for day in range(3) for hour in (8, 9, 20) for minute in (0, 10, 50)
        )
    ]
    path = write(tmp_path / "chat.txt", "\n".join(lines) + "\n")
    dialogues = records(read(path))
    turns = [turn.split(": ")[1] for record in dialogues for turn in record.dialogue.splitlines()]
    assert sorted(turns) == sorted(f"m{n}" for n in range(len(lines)))
    assert len({record.id for record in dialogues}) == len(dialogues)


def test_through_the_command_with_gzip_dialogue_kept_and_the_choice_said(fake_backend, tmp_path):
    path = tmp_path / "WhatsApp Chat with Party.txt.gz"
    path.write_bytes(gzip.compress(ANDROID.encode()))
    result = run(["-m", "x", str(path), "--keep-fields", "dialogue"])
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(result.stdout)
    assert [row["id"] for row in rows] == [
        "Party/2024-01-12T21:15:00",
        "Party/2024-01-13T09:02:00",
        "Party/2024-01-13T18:40:00",
    ]
    assert rows[0]["dialogue"].startswith("Anna: Are we still on") and rows[0]["summary"].startswith("Anna:")
    assert {"start", "end", "source", "chat"} <= set(rows[0])
    assert f"{path}: read as whatsapp: WhatsApp (Android) lines" in result.stderr


def test_stdin_whatsapp_is_sniffed(fake_backend):
    result = run(["-m", "x"], stdin=GERMAN)
    assert [row["id"] for row in read_jsonl(result.stdout)] == ["stdin/2024-01-12T21:15:00"]


def test_hostile_chats_are_errors_in_place(tmp_path):
    text = "stray line\n" + ANDROID.replace("and candles", "and \xff candles")
    path = write(tmp_path / "c.txt", text.encode("utf-8").replace("\xff".encode(), b"\xff"))
    items = read(path)
    errors = [str(item.error) for item in items if isinstance(item, BadRecord)]
    assert errors == [f"{path}:1: text before the first timestamped message", f"{path}:8: invalid UTF-8 at byte 4"]
    huge = write(tmp_path / "h.txt", "01/02/2024, 10:00 - A: " + "x\n" * 80 + "01/02/2024, 10:01 - B: ok\n")
    items = read(huge, max_line_bytes=100)
    assert str(items[0].error) == f"{huge}:1: message over 100 bytes (--max-line-bytes)"
    assert items[1].dialogue == "B: ok"
    bad_date = write(tmp_path / "d.txt", "31/02/2024, 10:00 - A: hi\n")
    assert str(read(bad_date)[0].error) == f"{bad_date}:1: unreadable date '31/02/2024, 10:00'"
