"""Hostile input for every format: cut files, wrong encodings, huge messages, deep nesting and random damage end
as errors in place (FILE:LINE or FILE:member:LINE) or one line, never a traceback or a silent exit 0."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint

import pytest
from click.testing import CliRunner
from conftest import read_jsonl
from hypothesis import given
from hypothesis import strategies as st
from test_formats_exports import DISCORD_MESSAGES, TELEGRAM_CHAT, discord_export, slack_files, slack_zip
from test_formats_subtitles import SRT, VTT
from test_formats_tabular import SAMSUM, SHOUT
from test_formats_whatsapp import ANDROID, IOS

from dialogsum_batch import formats
from dialogsum_batch.cli import main
from dialogsum_batch.inference.records import BadRecord, Record, read_records

SAMPLES = {  # one export of each file format, as bytes, with the name it would have
    "chats.csv": b'id,dialogue,summary\n1,"Anna: hi\nBen: yo",greeting\n2,Carl: ok,\n',
    "chats.tsv": b"id\tdialogue\n1\tAnna: hi\n",
    "test.json": json.dumps(SAMSUM, indent=4).encode(),
    "WhatsApp Chat with Party.txt": ANDROID.encode(),
    "_chat.txt": IOS.encode(),
    "result.json": json.dumps(TELEGRAM_CHAT, indent=1).encode(),
    "general.json": json.dumps(discord_export(DISCORD_MESSAGES), indent=2).encode(),
    "film.srt": SRT.encode(),
    "scene.vtt": VTT.encode(),
    "chats.jsonl": b'{"id": "a", "dialogue": "A: hi"}\n{"id": "b", "dialogue": "B: yo"}\n',
    "chats.txt": b"Anna: hi\nBen: yo\n\nCarl: ok\n",
}


def run(args, stdin=None):
    return CliRunner().invoke(main, args, input=stdin, catch_exceptions=False)


def accounted(items) -> None:
    """What every reader owes: records with text and an id, or errors with a place; all writable as JSON."""
    for item in items:
        assert isinstance(item, (Record, BadRecord)), item
        if isinstance(item, Record):
            assert item.dialogue.strip() and item.id
            json.dumps({"id": item.id, "dialogue": item.dialogue, **item.meta}, ensure_ascii=False).encode("utf-8")
        else:
            assert str(item.error).startswith(item.error.source)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_sample_reads_cleanly_under_auto(name, tmp_path):
    path = tmp_path / name
    path.write_bytes(SAMPLES[name])
    items = list(read_records([str(path)]))
    accounted(items)
    assert items and all(isinstance(item, Record) for item in items), items


@pytest.mark.property
@given(data=st.data())
def test_random_damage_to_any_export_is_accounted_for(tmp_path_factory, data):
    name = data.draw(st.sampled_from(sorted(SAMPLES)))
    content = bytearray(SAMPLES[name])
    cut = data.draw(st.integers(0, len(content)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, max(0, cut - 1)), st.integers(0, 255)), max_size=3))
    for position, value in flips:
        if position < cut:
            content[position] = value
    path = tmp_path_factory.mktemp("damage") / name
    path.write_bytes(bytes(content[:cut]))
    fmt = data.draw(st.sampled_from(["auto", *formats.BUILTIN]))
    accounted(list(read_records([str(path)], fmt=fmt, max_line_bytes=data.draw(st.sampled_from([64, 1 << 20])))))


@pytest.mark.property
@given(content=st.binary(max_size=3000), fmt=st.sampled_from(["auto", *formats.BUILTIN]))
def test_random_bytes_in_any_format_are_accounted_for(tmp_path_factory, content, fmt):
    path = tmp_path_factory.mktemp("random") / "input"
    path.write_bytes(content)
    accounted(list(read_records([str(path)], fmt=fmt)))


HOSTILE = {  # name -> (file name, content, the error's place and reason)
    "csv latin-1": ("c.csv", "id,dialogue\n1,A: caf\xe9\n".encode("latin-1"), ":2: invalid UTF-8 at byte 8"),
    "json cut": ("t.json", b'[\n{"dialogue": "A: hi"},\n{"dialo', ":3: invalid JSON (Unterminated string"),
    "json deep": ("t.json", b"[\n" * 100_000, ":2: JSON nested too deeply to read"),
    "whatsapp huge": ("w.txt", b"01/02/2024, 10:00 - A: " + b"x\n" * 600, ":1: message over 1,000 bytes"),
    "telegram deep": (
        "result.json",
        b'{"name": "A", "type": "personal_chat", "messages": [\n{"type": "message", "text": '
        + b"[\n" * 100_000
        + b"]}",
        ":2: JSON nested too deeply to read",
    ),
    "telegram huge line": (
        "result.json",
        b'{\n "name": "A",\n "type": "personal_chat",\n "messages": [\n{"type": "message", "text": "'
        + b"x" * 2000
        + b'"}]}',
        ":5: line is over the 1,000-byte limit (--max-line-bytes)",
    ),
    "discord not an object": (
        "d.json",
        json.dumps(discord_export(["hello"]), indent=1).encode(),
        ": expected a message object, got str",
    ),
    "srt cp1252": (
        "s.srt",
        "1\n00:00:01,000 --> 00:00:02,000\nA: \u201chi\u201d\n".encode("cp1252"),
        ":3: invalid UTF-8",
    ),
    "vtt bad timing": ("s.vtt", b"WEBVTT\n\n00:01 -> 00:02\nA: hi\n", ":3: a cue without a timing line"),
    "utf-16 text": ("w.txt", ANDROID.encode("utf-16"), ": UTF-16 text (it starts with a byte-order mark)"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_variants_fail_in_one_line_and_skip_with_an_error_record(fake_backend, tmp_path, case):
    name, content, expected = HOSTILE[case]
    path = tmp_path / name
    path.write_bytes(content)
    failed = run(["-m", "x", str(path), "--max-line-bytes", "1000"])
    assert failed.exit_code == 1 and "Traceback" not in failed.stderr
    (line,) = [line for line in failed.stderr.splitlines() if " error: " in line]
    assert f"error: {path}" in line and expected in line, line
    errors_out = tmp_path / "errors.jsonl"
    skipped = run(
        ["-m", "x", str(path), "--max-line-bytes", "1000", "--on-error", "skip", "--errors-out", str(errors_out)]
    )
    assert skipped.exit_code == 3, skipped.stderr
    rows = read_jsonl(errors_out.read_text())
    assert any(
        f"{row['source']}:{row['line']}: {row['reason']}".endswith(expected.lstrip(":").split(": ", 1)[-1])
        or expected.split(": ", 1)[-1] in row["reason"]
        for row in rows
    ), rows


def test_a_corrupt_zip_is_one_line(fake_backend, tmp_path):
    path = slack_zip(tmp_path / "export.zip", slack_files())
    path.write_bytes(path.read_bytes()[:200])
    result = run(["-m", "x", str(path)])
    assert result.exit_code == 1
    assert f"{path}: not a readable zip archive (" in result.stderr and "formats tried: slack" in result.stderr


def test_a_slack_export_on_stdin_is_refused_in_one_line(fake_backend, tmp_path):
    data = slack_zip(tmp_path / "export.zip", slack_files()).read_bytes()
    result = CliRunner().invoke(main, ["-m", "x", "-"], input=data)
    assert result.exit_code == 1
    assert "<stdin>: a Slack export cannot come on stdin: give the path of its .zip or folder" in result.stderr


def test_when_two_formats_fit_the_choice_is_said(monkeypatch, fake_backend, tmp_path):
    greedy = formats.Format("shout", "claims every JSON array", SHOUT.read, sniff=lambda head: "it likes arrays")
    monkeypatch.setattr(formats, "entry_points", lambda group: [EntryPoint("shout", "x:y", group)])
    monkeypatch.setattr(EntryPoint, "load", lambda self: greedy)
    path = tmp_path / "data"
    path.write_text(json.dumps(SAMSUM), encoding="utf-8")
    result = run(["-m", "x", str(path)])
    assert result.exit_code == 0, result.stderr
    assert f"{path}: read as json: a JSON array; it could also be shout (--format picks one)" in result.stderr


def test_zip_members_bigger_than_the_cap_are_refused_unread(monkeypatch, tmp_path):
    from dialogsum_batch.formats import slack

    monkeypatch.setattr(slack, "DOCUMENT_BYTES", 100)
    path = slack_zip(tmp_path / "export.zip", slack_files())
    errors = [str(item.error) for item in read_records([str(path)]) if isinstance(item, BadRecord)]
    assert f"{path}:users.json: cannot read (" in errors[0] and "over the 100-byte limit" in errors[0]
    assert all("cannot read" in error for error in errors)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
MESSAGE_KEYS = {  # the keys each exporter's messages are read by
    "telegram": ["type", "date", "from", "text", "photo", "media_type", "file", "file_name", "poll"],
    "discord": ["type", "timestamp", "author", "content", "attachments", "stickers"],
    "slack": [
        "type",
        "subtype",
        "ts",
        "user",
        "text",
        "files",
        "thread_ts",
        "reply_count",
        "user_profile",
        "bot_profile",
        "username",
        "bot_id",
    ],
}
VALID = {
    "telegram": {"type": "message", "date": "2024-01-12T21:15:03", "from": "Anna", "text": "hi"},
    "discord": {"type": "Default", "timestamp": "2024-01-12T21:15:03+00:00", "author": {"name": "a"}, "content": "hi"},
    "slack": {"type": "message", "ts": "1705093200.000100", "user": "U1", "text": "hi"},
}


@pytest.mark.property
@given(data=st.data())
def test_messages_of_any_shape_are_accounted_for(tmp_path_factory, data):
    kind = data.draw(st.sampled_from(sorted(MESSAGE_KEYS)))
    keys = st.sampled_from(MESSAGE_KEYS[kind])
    message = st.dictionaries(keys, JSON_VALUES, max_size=6).map(lambda fields: {**VALID[kind], **fields})
    messages = data.draw(st.lists(message, min_size=1, max_size=4))
    folder = tmp_path_factory.mktemp(kind)
    if kind == "telegram":
        path = folder / "result.json"
        path.write_text(json.dumps({"name": "A", "type": "personal_chat", "messages": messages}), encoding="utf-8")
    elif kind == "discord":
        path = folder / "d.json"
        path.write_text(json.dumps(discord_export(messages)), encoding="utf-8")
    else:
        path = slack_zip(folder / "e.zip", {**slack_files(), "general/2024-01-12.json": messages})
    accounted(list(read_records([str(path)])))
