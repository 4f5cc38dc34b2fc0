"""Subtitles in as dialogues: SRT and WebVTT cues, speaker labels and voices as turns, tags and sound notes
dropped, silences over --gap splitting, and cues without timing as errors in place."""

from __future__ import annotations

import gzip

from click.testing import CliRunner
from conftest import read_jsonl

from dialogsum_batch.cli import main
from dialogsum_batch.inference.records import BadRecord, Record, read_records

SRT = """\
1
00:00:01,000 --> 00:00:03,500
ANNA: Where were you?
<i>I waited for hours.</i>

2
00:00:04,000 --> 00:00:06,000
- BEN: At the station.
- ANNA: All night?

3
00:00:06,500 --> 00:00:08,000
[door slams]

4
00:45:00,000 --> 00:45:02,000
{\\an8}BEN: Morning.
"""

VTT = """\
WEBVTT - a scene

NOTE written by hand

STYLE
::cue { color: yellow }

intro
00:01.000 --> 00:03.000 align:start position:10%
<v Anna>Where were you?</v>

00:04.000 --> 00:06.000
<v.loud Ben>At the station.
and then home

00:00:07.000 --> 00:00:08.000
no label: still Ben
"""


def run(args, stdin=None):
    return CliRunner().invoke(main, args, input=stdin, catch_exceptions=False)


def test_srt_labels_become_turns_and_a_long_silence_a_new_dialogue(fake_backend, tmp_path):
    path = tmp_path / "film.en.srt"
    path.write_text(SRT, encoding="utf-8")
    result = run(["-m", "x", str(path), "--keep-fields", "dialogue"])
    assert result.exit_code == 0, result.stderr
    first, second = read_jsonl(result.stdout)
    assert first["dialogue"] == "ANNA: Where were you? I waited for hours.\nBEN: At the station.\nANNA: All night?"
    assert (first["id"], first["start"], first["end"]) == ("film.en/00:00:01.000", "00:00:01.000", "00:00:04.000")
    assert (second["dialogue"], second["format"]) == ("BEN: Morning.", "srt")


def test_vtt_voices_and_unlabelled_lines_continue_the_speaker(tmp_path):
    path = tmp_path / "scene.vtt.gz"
    path.write_bytes(gzip.compress(VTT.encode()))
    (record,) = read_records([str(path)])
    assert record.dialogue == "Anna: Where were you?\nBen: At the station. and then home no label: still Ben"
    assert record.meta["format"] == "vtt" and record.meta["source"] == f"{path}:8"


def test_unlabelled_subtitles_are_one_speaker(fake_backend):
    result = run(
        ["-m", "x"], stdin="1\n00:00:01,000 --> 00:00:02,000\nHello there.\n\n2\n00:00:02,500 --> 00:00:03,000\nHi.\n"
    )
    (row,) = read_jsonl(result.stdout)
    assert row["summary"] == "Speaker: Hello there. Hi." and row["id"] == "stdin/00:00:01.000"
    assert "<stdin>: read as srt: SubRip cues" in result.stderr


def test_broken_cues_and_bad_lines_are_errors_in_place(tmp_path):
    text = SRT.replace("00:00:04,000 --> 00:00:06,000", "00:00:04,000 -> 00:00:06,000").encode()
    path = tmp_path / "bad.srt"
    path.write_bytes(text.replace(b"Morning.", b"Morning \xff"))
    items = list(read_records([str(path)]))
    errors = [str(item.error) for item in items if isinstance(item, BadRecord)]
    assert errors == [
        f"{path}:6: a cue without a timing line (00:00:01,000 --> 00:00:02,000)",
        f"{path}:17: invalid UTF-8 at byte 19",
    ]
    assert [item.dialogue for item in items if isinstance(item, Record)] == [
        "ANNA: Where were you? I waited for hours."
    ]
