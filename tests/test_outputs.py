"""Unit tests for inference/outputs.py: strict JSONL lines, write errors, same-file checks, resume
bookkeeping of files a previous run wrote, and the output lock."""

from __future__ import annotations

import errno
import io
import json
import math
import os
import sys
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialogsum_batch.errors import DataError, InputError, LockedError
from dialogsum_batch.inference.outputs import (
    ERROR_KEYS,
    OUTPUT_KEYS,
    JsonlWriter,
    OutputLock,
    Resumed,
    error_record,
    jsonl_line,
    open_output,
    read_resumed,
    same_file,
    scan_written,
)
from dialogsum_batch.inference.records import RAW_LIMIT

# ---------------------------------------------------------------------------- helpers


DISK_FULL = OSError(errno.ENOSPC, "No space left on device")


class FailingStream(io.StringIO):
    """A text stream whose writes or flushes fail as a full disk or a closed pipe does."""

    def __init__(self, name: str | None = "out.jsonl", fail: str = "write", error: OSError = DISK_FULL):
        super().__init__()
        if name is not None:
            self.name = name
        self.fail = fail
        self.error = error

    def write(self, text: str) -> int:
        if self.fail == "write":
            raise self.error
        return super().write(text)

    def flush(self) -> None:
        if self.fail == "flush":
            raise self.error
        super().flush()


def lines(*rows: dict) -> bytes:
    return "".join(jsonl_line(row) for row in rows).encode("utf-8")


def done(path, limit=None):
    """The ids --resume finds in an output file (``read_resumed``, the one reader of resume state)."""
    return read_resumed(str(path), limit=limit).done


def seen(path):
    """The bad records --resume finds in an errors file (beside an output not written yet)."""
    return read_resumed(str(path.with_name("no-output.jsonl")), str(path)).seen


def unchanged_after(path, action):
    """Run ``action`` (which must raise DataError) and check the file's bytes are as they were."""
    before = path.read_bytes()
    with pytest.raises(DataError) as caught:
        action()
    assert path.read_bytes() == before, "a file that is not ours is left unchanged"
    return str(caught.value)


# ---------------------------------------------------------------------------- jsonl_line


def test_jsonl_line_is_one_strict_line_with_non_ascii_kept():
    line = jsonl_line({"id": "ü1", "summary": "Zoë says 你好 🙂", "n": 2, "ok": True, "x": None})
    assert line == '{"id": "ü1", "summary": "Zoë says 你好 🙂", "n": 2, "ok": true, "x": null}\n'


@pytest.mark.parametrize(
    "char, escape",
    [
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
        ("\u0085", "\\u0085"),
        ("\n", "\\n"),
        ("\r", "\\r"),
        ("\x0b", "\\u000b"),
        ("\x1c", "\\u001c"),
    ],
)
def test_jsonl_line_escapes_every_line_break(char, escape):
    line = jsonl_line({"summary": f"a{char}b", f"k{char}": 1})
    assert char not in line[:-1]
    assert f"a{escape}b" in line and f"k{escape}" in line
    assert line.endswith("}\n") and len(line.splitlines()) == 1
    assert json.loads(line) == {"summary": f"a{char}b", f"k{char}": 1}


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_jsonl_line_refuses_nan_and_infinity(number):
    with pytest.raises(ValueError):
        jsonl_line({"score": number})


@pytest.mark.property
@given(
    st.dictionaries(
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=5),
        st.one_of(
            st.text(st.characters(blacklist_categories=("Cs",))),
            st.integers(),
            st.floats(allow_nan=False, allow_infinity=False),
            st.none(),
        ),
        max_size=5,
    )
)
def test_jsonl_line_round_trips_as_a_single_line(value):
    line = jsonl_line(value)
    assert line.endswith("\n") and len(line.splitlines()) == 1
    assert json.loads(line) == value
    line.encode("utf-8")  # always writable


# ---------------------------------------------------------------------------- JsonlWriter


def test_jsonl_writer_writes_one_line_per_value():
    stream = io.StringIO()
    writer = JsonlWriter(stream)
    writer.write({"id": "a", "summary": "x"})
    writer.write({"id": "b", "summary": "y\u2028z"})
    writer.flush()
    assert stream.getvalue().splitlines() == ['{"id": "a", "summary": "x"}', '{"id": "b", "summary": "y\\u2028z"}']


@pytest.mark.parametrize("fail", ["write", "flush"])
def test_jsonl_writer_failure_is_a_data_error_naming_the_file(fail):
    writer = JsonlWriter(FailingStream("results/out.jsonl", fail))
    with pytest.raises(DataError) as caught:
        writer.write({"id": "a"})
        writer.flush()
    assert str(caught.value) == "results/out.jsonl: cannot write (No space left on device)"
    assert isinstance(caught.value.__cause__, OSError)


def test_jsonl_writer_failure_without_a_name_or_strerror():
    writer = JsonlWriter(FailingStream(None, error=OSError("pipe closed")))
    with pytest.raises(DataError, match=r"^output: cannot write \(pipe closed\)$"):
        writer.write({"id": "a"})


# ---------------------------------------------------------------------------- same_file


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("x\n")
    return path


def test_same_file_same_path_spelt_two_ways(a_file, monkeypatch):
    monkeypatch.chdir(a_file.parent)
    assert same_file(str(a_file), "out.jsonl")
    assert same_file(str(a_file), f"./sub/../{a_file.name}")


def test_same_file_through_a_symlink(a_file):
    link = a_file.parent / "link.jsonl"
    link.symlink_to(a_file)
    assert same_file(str(link), str(a_file))
    assert same_file(str(a_file), str(link))


def test_same_file_through_a_hard_link(a_file):
    hard = a_file.parent / "hard.jsonl"
    os.link(a_file, hard)
    assert same_file(str(hard), str(a_file))


def test_same_file_through_a_dangling_symlink_to_the_other_path(tmp_path):
    target = tmp_path / "not-yet.jsonl"
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    assert same_file(str(link), str(target))


def test_different_files_are_not_the_same(a_file):
    other = a_file.parent / "other.jsonl"
    other.write_text("x\n")  # same content, different inode
    assert not same_file(str(a_file), str(other))


@pytest.mark.parametrize(
    "first, second",
    [("out.jsonl", "missing.jsonl"), ("missing.jsonl", "out.jsonl"), ("missing.jsonl", "also-missing.jsonl")],
)
def test_same_file_with_a_missing_file_is_false(a_file, first, second):
    folder = a_file.parent
    assert not same_file(str(folder / first), str(folder / second))


# ---------------------------------------------------------------------------- open_output, error_record


def test_open_output_dash_is_stdout():
    assert open_output("-", append=False) is sys.stdout
    assert open_output("-", append=True) is sys.stdout


def test_open_output_creates_folders_and_truncates_or_appends(tmp_path):
    path = tmp_path / "deep" / "er" / "out.jsonl"
    with open_output(str(path), append=False) as stream:
        stream.write("first\n")
    with open_output(str(path), append=True) as stream:
        stream.write("second\n")
    assert path.read_text() == "first\nsecond\n"
    with open_output(str(path), append=False) as stream:
        stream.write("fresh\n")
    assert path.read_text() == "fresh\n"


def test_open_output_writes_utf8(tmp_path):
    path = tmp_path / "out.jsonl"
    with open_output(str(path), append=False) as stream:
        stream.write(jsonl_line({"summary": "Zoë 你好"}))
    assert path.read_bytes() == '{"summary": "Zoë 你好"}\n'.encode()


def test_open_output_that_cannot_be_written_is_a_data_error(tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    with pytest.raises(DataError, match=r"a-folder: cannot write \(Is a directory\)$"):
        open_output(str(folder), append=False)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(DataError, match=r"^.*file/out.jsonl: cannot write \(.+\)$"):
        open_output(str(blocker / "out.jsonl"), append=False)


def test_error_record_fields():
    error = InputError("chats.jsonl", 17, "field 'dialogue' is missing", '{"id": 1}')
    assert error_record(error) == {
        "source": "chats.jsonl",
        "line": 17,
        "reason": "field 'dialogue' is missing",
        "raw": '{"id": 1}',
    }


def test_error_record_without_line_or_raw():
    error = InputError("gone.jsonl", None, "cannot open (No such file or directory)")
    assert error_record(error) == {
        "source": "gone.jsonl",
        "line": None,
        "reason": "cannot open (No such file or directory)",
        "raw": None,
    }


def test_error_record_shortens_a_long_raw_line():
    record = error_record(InputError("a", 1, "bad", "x" * 5000))
    assert record["raw"] == "x" * RAW_LIMIT + "..."


def test_error_records_resume_through_read_resumed(tmp_path):
    path = tmp_path / "errors.jsonl"
    errors = [
        InputError("a.jsonl", 3, "bad"),
        InputError("b.jsonl", None, "cannot open"),
        InputError("a.jsonl", 3, "x"),
    ]
    path.write_bytes(lines(*(error_record(error) for error in errors)))
    assert seen(path) == {("a.jsonl", 3), ("b.jsonl", None)}


# ---------------------------------------------------------------------------- scan_written / read_resumed


def test_a_missing_output_resumes_nothing_and_is_not_created(tmp_path):
    path = tmp_path / "out.jsonl"
    assert done(path) == {}
    assert not path.exists()


def test_resume_counts_each_id_and_reads_the_whole_file(tmp_path):
    path = tmp_path / "out.jsonl"
    rows = [{"id": f"c{i}", "summary": "s"} for i in range(5000)] + [{"id": "c7", "summary": "again"}, {"id": 12}]
    path.write_bytes(lines(*rows) + b"\n  \n")
    found = done(path)
    assert len(found) == 5001
    assert found["c7"] == 2 and found["c4999"] == 1 and found["12"] == 1


@pytest.mark.parametrize("torn", [b'{"id": "c2", "summary": "half', b'{"id": ', b'{"i', b"{", b'{"id": "c2"}'])
def test_torn_last_line_is_found_by_scan_and_dropped_only_by_drop_torn_line(tmp_path, torn):
    path = tmp_path / "out.jsonl"
    whole = lines({"id": "c0", "summary": "a"}, {"id": "c1", "summary": "b"})
    path.write_bytes(whole + torn)
    written = scan_written(str(path), OUTPUT_KEYS)
    assert written.rows == [("c0",), ("c1",)]
    assert written.torn == len(whole)
    assert path.read_bytes() == whole + torn, "scanning changes nothing"
    written.drop_torn_line()
    assert path.read_bytes() == whole


def test_resume_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "out.jsonl"
    whole = lines({"id": "c0", "summary": "a"})
    path.write_bytes(whole + b'{"id": "c1", "sum')
    assert done(path) == {"c0": 1}
    assert path.read_bytes() == whole


@pytest.mark.parametrize("tail", [b"\0", b"\0" * 4096])
def test_zeros_after_a_power_cut_are_a_torn_tail(tmp_path, tail):
    path = tmp_path / "out.jsonl"
    whole = lines({"id": "c0", "summary": "a"})
    path.write_bytes(whole + tail)
    assert done(path) == {"c0": 1}
    assert path.read_bytes() == whole


def test_a_file_of_only_zeros_is_emptied(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(b"\0" * 100)
    assert done(path) == {}
    assert path.read_bytes() == b""


def test_a_complete_file_is_left_whole(tmp_path):
    path = tmp_path / "out.jsonl"
    whole = lines({"id": "c0", "summary": "a"})
    path.write_bytes(whole)
    written = scan_written(str(path), OUTPUT_KEYS)
    assert written.torn is None
    written.drop_torn_line()
    assert path.read_bytes() == whole


@pytest.mark.parametrize(
    "content, number, reason",
    [
        (b"hello world\n", 1, "invalid JSON (Expecting value)"),
        (lines({"id": "a"}) + b"[1, 2]\n", 2, "expected a JSON object, got array"),
        (lines({"id": "a"}) + b"\n" + lines({"summary": "s"}), 3, "no field 'id'"),
        (lines({"id": True}), 1, "field 'id' must be a string, got boolean"),
        (lines({"id": None}), 1, "field 'id' must be a string, got null"),
        (lines({"id": 1.5}), 1, "field 'id' must be a string, got number"),
        (lines({"id": ["a"]}), 1, "field 'id' must be a string, got array"),
        (b'{"id": "caf\xe9"}\n', 1, "invalid UTF-8 at byte 11"),
        (b'{"id": "a", "n": ' + b"9" * 5000 + b"}\n", 1, "JSON nested too deeply or with a number too long to read"),
        (
            lines({"id": "a"}) + b"plain text without a newline",
            2,
            "the last line is torn and does not start like ours",
        ),
        (
            lines({"id": "a"}) + b'{"summary": "s", "id": "x',
            2,
            "the last line is torn and does not start like ours",
        ),
    ],
)
def test_foreign_file_is_a_data_error_naming_path_line_and_left_unchanged(tmp_path, content, number, reason):
    path = tmp_path / "out.jsonl"
    path.write_bytes(content)
    message = unchanged_after(path, lambda: done(path))
    assert message == f"{path}:{number}: cannot resume: {reason}; not a dialogsum-batch output? (left unchanged)"


def test_a_bad_line_before_a_torn_tail_leaves_the_tail_too(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(lines({"id": "a"}) + b"oops\n" + lines({"id": "b"}) + b'{"id": "c", "su')
    message = unchanged_after(path, lambda: done(path))
    assert message.startswith(f"{path}:2: cannot resume: invalid JSON")


def test_a_line_over_the_limit_is_not_ours(tmp_path):
    path = tmp_path / "out.jsonl"
    long = lines({"id": "b", "summary": "x" * 500})
    path.write_bytes(lines({"id": "a"}) + long)
    message = unchanged_after(path, lambda: done(path, limit=100))
    assert message.startswith(f"{path}:2: cannot resume: a line over the 100-byte limit;")


def test_non_regular_files_are_refused(tmp_path):
    folder = tmp_path / "out.jsonl"
    folder.mkdir()
    with pytest.raises(DataError, match=r"out.jsonl: cannot resume: not a regular file$"):
        scan_written(str(folder), OUTPUT_KEYS)
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"fifo.jsonl: cannot resume: not a regular file$"):
        done(fifo)  # would block for ever if it were opened


def test_no_errors_file_resumes_with_no_bad_records_seen(tmp_path):
    output = str(tmp_path / "out.jsonl")
    assert read_resumed(output, None).seen == set()
    assert read_resumed(output, "").seen == set()
    assert seen(tmp_path / "missing.jsonl") == set()
    assert not (tmp_path / "missing.jsonl").exists()


def test_both_files_are_checked_before_either_changes(tmp_path):
    output, errors = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    output.write_bytes(lines({"id": "a"}) + b'{"id": "b')  # a torn tail, dropped only if both files check out
    errors.write_bytes(lines({"id": "a"}))  # an output where the errors file should be
    with pytest.raises(DataError, match=r"errors.jsonl:1: cannot resume: no field 'source'"):
        read_resumed(str(output), str(errors))
    assert output.read_bytes() == lines({"id": "a"}) + b'{"id": "b'
    errors.write_bytes(lines(error_record(InputError("a.jsonl", 1, "bad"))))
    assert read_resumed(str(output), str(errors)) == Resumed(Counter({"a": 1}), {("a.jsonl", 1)})
    assert output.read_bytes() == lines({"id": "a"})


def test_a_torn_error_line_is_dropped(tmp_path):
    path = tmp_path / "errors.jsonl"
    whole = lines(error_record(InputError("a.jsonl", 1, "bad")))
    path.write_bytes(whole + b'{"source": "a.jsonl", "li')
    assert seen(path) == {("a.jsonl", 1)}
    assert path.read_bytes() == whole


@pytest.mark.parametrize(
    "row, reason",
    [
        ({"id": "c0", "summary": "s"}, "no field 'source'"),
        ({"source": "a", "reason": "r"}, "no field 'line'"),
        ({"source": 3, "line": 1}, "field 'source' must be a string, got number"),
        ({"source": "a", "line": "1"}, "field 'line' must be an integer or null, got string"),
        ({"source": "a", "line": False}, "field 'line' must be an integer or null, got boolean"),
    ],
)
def test_an_errors_file_that_is_not_ours_is_refused(tmp_path, row, reason):
    path = tmp_path / "errors.jsonl"
    path.write_bytes(lines(row))
    message = unchanged_after(path, lambda: seen(path))
    assert message == f"{path}:1: cannot resume: {reason}; not a dialogsum-batch output? (left unchanged)"


def test_scan_written_reads_the_keys_asked_for(tmp_path):
    path = tmp_path / "errors.jsonl"
    path.write_bytes(lines({"source": "a", "line": 2, "reason": "r"}, {"source": "b", "line": None}))
    assert scan_written(str(path), ERROR_KEYS).rows == [("a", 2), ("b", None)]


def test_dropping_the_tail_of_a_file_gone_is_a_data_error(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(lines({"id": "a"}) + b'{"id": "b')
    written = scan_written(str(path), OUTPUT_KEYS)
    path.unlink()
    path.mkdir()  # now a folder: truncate fails
    with pytest.raises(DataError, match=r"out.jsonl: cannot resume \(Is a directory\)$"):
        written.drop_torn_line()


# ---------------------------------------------------------------------------- OutputLock


def test_output_lock_notes_the_pid_and_removes_the_file_at_exit(tmp_path):
    path = tmp_path / "sub" / "out.jsonl.lock"
    with OutputLock(str(path)):
        assert path.read_text() == f"pid {os.getpid()}\n"
    assert not path.exists()


def test_second_holder_gets_locked_error_naming_the_pid(tmp_path):
    path = str(tmp_path / "out.jsonl.lock")
    with OutputLock(path):
        with pytest.raises(LockedError) as caught, OutputLock(path):
            pytest.fail("two holders of one lock")
        assert str(caught.value) == (f"{path} is held by pid {os.getpid()}: another run is writing the same output")
        assert caught.value.exit_code == 75
        assert os.path.exists(path), "a refused second run does not remove the holder's lock"
    assert not os.path.exists(path)


def test_output_lock_is_removed_when_the_run_fails(tmp_path):
    path = tmp_path / "out.jsonl.lock"
    with pytest.raises(RuntimeError), OutputLock(str(path)):
        raise RuntimeError("job failed")
    assert not path.exists()


def test_output_lock_can_be_taken_again_after_release(tmp_path):
    path = str(tmp_path / "out.jsonl.lock")
    lock = OutputLock(path)
    with lock:
        pass
    with lock:  # the same object again
        assert os.path.exists(path)
    with OutputLock(path), pytest.raises(LockedError):  # and a new one, refused while it is held
        OutputLock(path).__enter__()
    assert not os.path.exists(path)


def test_stale_lock_file_without_a_holder_is_taken(tmp_path):
    path = tmp_path / "out.jsonl.lock"
    path.write_text("pid 999999999\n")  # left by a run killed with SIGKILL: no flock on it
    with OutputLock(str(path)):
        assert path.read_text() == f"pid {os.getpid()}\n"
    assert not path.exists()


def test_output_lock_that_cannot_be_created_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r": cannot create the lock \(Is a directory\)$"), OutputLock(str(tmp_path)):
        pytest.fail("locked a folder")
