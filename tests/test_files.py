"""The file mechanics of dialogsum_batch.files: locks, publishing, digests, capped lines, JSON limits."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time

import pytest

from dialogsum_batch.files import (
    CHUNK,
    NESTED_TOO_DEEPLY,
    NUMBER_TOO_LONG,
    JsonLimitError,
    Sha256Counter,
    capped_lines,
    decode_json_limited,
    exclusive_lock,
    loads_json_limited,
    publish_dir,
    publish_file,
    sha256_file,
    staging_dir,
    write_json_atomic,
)

# ---------------------------------------------------------------------------- locks


def test_a_held_lock_turns_a_second_non_blocking_attempt_away(tmp_path):
    path = tmp_path / "out.lock"
    with exclusive_lock(path, wait=False) as first:
        assert first is not None
        with exclusive_lock(path, wait=False) as second:
            assert second is None
    with exclusive_lock(path, wait=False) as again:  # released when the block ended
        assert again is not None


def test_a_waiting_lock_says_so_and_is_taken_once_the_holder_lets_go(tmp_path):
    path = tmp_path / "key.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from dialogsum_batch.files import exclusive_lock\n"
            f"with exclusive_lock({str(path)!r}, wait=False):\n"
            "    print('held', flush=True); time.sleep(1.0)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert holder.stdout.readline().strip() == "held"
    waited: list[str] = []
    started = time.monotonic()
    with exclusive_lock(path, wait=True, waiting=lambda: waited.append("waiting")) as handle:
        assert handle is not None and waited == ["waiting"]
        assert time.monotonic() - started > 0.3
    assert holder.wait(timeout=30) == 0


def test_the_lock_file_is_the_holders_to_write(tmp_path):
    path = tmp_path / "out.lock"
    with exclusive_lock(path, wait=False) as handle:
        handle.write("pid 42\n")
        handle.flush()
        with exclusive_lock(path, wait=False) as other:
            assert other is None and path.read_text() == "pid 42\n"


# ---------------------------------------------------------------------------- publishing


def test_publish_file_replaces_the_file_whole(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    with publish_file(path) as handle:
        handle.write("new")
        assert path.read_text() == "old"  # readers see the old file until the block ends
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["metrics.json"]


def test_publish_file_leaves_no_partial_file_on_an_exception(tmp_path):
    path = tmp_path / "download.bin"
    with pytest.raises(RuntimeError), publish_file(path, "wb", durable=True) as handle:
        handle.write(b"half")
        raise RuntimeError("connection lost")
    assert os.listdir(tmp_path) == []
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), publish_file(path, "wb") as handle:
        handle.write(b"half")
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == ["download.bin"] and path.read_bytes() == b"old"


def test_write_json_atomic(tmp_path):
    write_json_atomic(tmp_path / "index.json", {"a": [1, 2]})
    assert json.loads((tmp_path / "index.json").read_text()) == {"a": [1, 2]}


def test_a_staging_folder_is_removed_unless_published(tmp_path):
    with pytest.raises(RuntimeError), staging_dir(tmp_path, ".tmp-key-") as staging:
        (staging / "model.bin").write_bytes(b"half")
        raise RuntimeError
    assert os.listdir(tmp_path) == []
    with staging_dir(tmp_path, ".tmp-key-") as staging:
        (staging / "model.bin").write_bytes(b"whole")
        assert publish_dir(staging, tmp_path / "key")
    assert os.listdir(tmp_path) == ["key"] and (tmp_path / "key" / "model.bin").read_bytes() == b"whole"


def test_publish_dir_replaces_only_what_it_is_allowed_to(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "precious.txt").write_text("keep")
    staging = tmp_path / ".staging"
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    assert not publish_dir(staging, target, replaceable=lambda aside: (aside / "marker").is_file())
    assert sorted(os.listdir(tmp_path)) == [".staging", "out"] and (target / "precious.txt").is_file()
    (target / "marker").touch()
    assert publish_dir(staging, target, replaceable=lambda aside: (aside / "marker").is_file())
    assert os.listdir(tmp_path) == ["out"] and os.listdir(target) == ["new.txt"]


# ---------------------------------------------------------------------------- digests


def test_sha256_of_a_file_and_of_a_stream(tmp_path):
    data = os.urandom(CHUNK) + b"tail"  # more than one read
    (tmp_path / "weights.bin").write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_file(tmp_path / "weights.bin") == (len(data), expected)
    counter = Sha256Counter()
    for start in range(0, len(data), 1000):
        counter.update(data[start : start + 1000])
    assert (counter.size, counter.hexdigest()) == (len(data), expected)


# ---------------------------------------------------------------------------- capped lines


class CountingReads(io.BytesIO):
    """A byte stream that remembers the largest read it returned, and refuses an unbounded readline."""

    def __init__(self, data: bytes):
        super().__init__(data)
        self.largest = 0

    def readline(self, size: int = -1) -> bytes:
        assert size > 0, "an unbounded readline would hold a whole over-long line"
        line = super().readline(size)
        self.largest = max(self.largest, len(line))
        return line


@pytest.mark.parametrize(
    "line, expected",
    [
        (b"x" * 10, b"x" * 10 + b"\n"),  # exactly the limit: kept
        (b"x" * 11, 11),  # one byte over: the bytes read of it
    ],
)
def test_the_line_cap_is_inclusive(line, expected):
    assert list(capped_lines(io.BytesIO(line + b"\nnext\n"), 10)) == [expected, b"next\n"]


def test_an_over_long_last_line_without_newline():
    assert list(capped_lines(io.BytesIO(b"ok\n" + b"y" * 5000), 100)) == [b"ok\n", 101]
    assert list(capped_lines(io.BytesIO(b"x" * 100 + b"\n" + b"y" * 100), 100)) == [b"x" * 100 + b"\n", b"y" * 100]


def test_an_endless_line_is_read_past_without_being_held():
    stream = CountingReads(b"short\n" + b"z" * (5 * CHUNK + 123) + b"\nafter\n")
    assert list(capped_lines(stream, 64)) == [b"short\n", 65, b"after\n"]
    assert stream.largest <= CHUNK


def test_an_endless_line_is_reported_before_it_ends():
    """A consumer that stops at the over-long line never waits for the rest of it."""
    lines = capped_lines(CountingReads(b"z" * (10 * CHUNK)), 64)
    assert next(lines) == 65


def test_text_lines_are_capped_in_characters():
    stream = io.StringIO("é" * 10 + "\n" + "é" * 11 + "\nok")
    assert list(capped_lines(stream, 10)) == ["é" * 10 + "\n", 11, "ok"]


# ---------------------------------------------------------------------------- JSON limits


@pytest.mark.parametrize(
    "text, reason",
    [
        ("[" * 100_000 + "]" * 100_000, NESTED_TOO_DEEPLY),
        ('{"n": ' + "9" * 5000 + "}", NUMBER_TOO_LONG),
    ],
)
def test_valid_json_python_refuses_is_one_error(text, reason):
    with pytest.raises(JsonLimitError, match=f"^{re.escape(reason)}$"):
        loads_json_limited(text)
    with pytest.raises(JsonLimitError, match=f"^{re.escape(reason)}$"):
        decode_json_limited(" " + text, 1)


def test_constants_are_refused_only_when_asked():
    assert loads_json_limited('{"x": NaN}')["x"] != 0
    with pytest.raises(JsonLimitError, match=r"^NaN is not valid JSON \(RFC 8259\)$"):
        loads_json_limited('{"x": NaN}', reject_constants=True)
    with pytest.raises(JsonLimitError, match="-Infinity is not valid JSON"):
        decode_json_limited("[-Infinity]", 0, reject_constants=True)


def test_bad_json_and_bad_utf8_keep_their_own_errors():
    with pytest.raises(json.JSONDecodeError):
        loads_json_limited("{model_type: pegasus")
    with pytest.raises(UnicodeDecodeError):
        loads_json_limited(b'{"a": "\xff"}')
