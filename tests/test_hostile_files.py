"""Hostile files around a job: outputs that are inputs in disguise, resume files that are not ours, full
disks and broken writes, a SIGTERM while the producer is silent. Each is one line, loses nothing written,
and leaves no lock behind; ``--resume`` finishes the job afterwards.
"""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REPO, TORCHRUN, launch_env, read_jsonl, start_fake_command, write_jsonl
from hypothesis import given
from hypothesis import strategies as st

from dialogsum_batch import files
from dialogsum_batch.cli import main
from dialogsum_batch.errors import DataError, LockedError
from dialogsum_batch.inference import job as runner
from dialogsum_batch.inference import outputs
from dialogsum_batch.inference.feed import Feed
from dialogsum_batch.inference.outputs import OutputLock, read_resumed, same_file


def run(args, stdin=None):
    return CliRunner().invoke(main, args, input=stdin, catch_exceptions=False)


def chats(path: Path, n: int, prefix: str = "c") -> Path:
    return write_jsonl(path, [{"id": f"{prefix}{i}", "dialogue": f"A: message {i}\nB: ok"} for i in range(n)])


def one_error_line(stderr: str) -> str:
    """The run's single error line: one line a person can act on, never a traceback."""
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if " error: " in line]
    assert len(errors) == 1, stderr
    return errors[0]


def leftover_locks(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.lock"))


# ---------------------------------------------------------------------------- outputs that are inputs


def test_same_file_sees_hard_links_and_symlinks(tmp_path):
    original = chats(tmp_path / "a.jsonl", 1)
    os.link(original, tmp_path / "hard.jsonl")
    (tmp_path / "soft.jsonl").symlink_to(original)
    assert same_file(str(original), str(tmp_path / "hard.jsonl"))
    assert same_file(str(tmp_path / "soft.jsonl"), str(tmp_path / "hard.jsonl"))
    assert not same_file(str(original), str(tmp_path / "new.jsonl"))  # not there yet: the paths decide
    assert same_file(str(tmp_path / "new.jsonl"), str(tmp_path / "." / "new.jsonl"))


@pytest.mark.parametrize("option", ["-o", "--errors-out", "--metrics-out", "--lock"])
def test_a_written_file_hard_linked_to_an_input_is_refused(fake_backend, tmp_path, option):
    source = chats(tmp_path / "in.jsonl", 3)
    before = source.read_bytes()
    os.link(source, tmp_path / "alias.jsonl")
    extra = ["--on-error", "skip"] if option == "--errors-out" else []
    output = [] if option == "-o" else ["-o", str(tmp_path / "out.jsonl")]
    result = run(["-m", "x", str(source), *output, *extra, option, str(tmp_path / "alias.jsonl")])
    assert result.exit_code == 2 and "is also an input" in result.stderr
    assert source.read_bytes() == before


def test_an_output_hard_linked_to_the_errors_file_is_refused(fake_backend, tmp_path):
    source = chats(tmp_path / "in.jsonl", 2)
    errors = tmp_path / "errors.jsonl"
    errors.write_text('{"source": "x", "line": 1, "reason": "r", "raw": null}\n', encoding="utf-8")
    os.link(errors, tmp_path / "out.jsonl")
    result = run(
        ["-m", "x", str(source), "-o", str(tmp_path / "out.jsonl"), "--on-error", "skip", "--errors-out", str(errors)]
    )
    assert result.exit_code == 2 and "are the same file" in result.stderr
    assert len(read_jsonl(errors.read_text())) == 1


def test_an_input_named_like_the_default_lock_is_refused(fake_backend, tmp_path):
    out = tmp_path / "out.jsonl"
    lock = chats(tmp_path / "out.jsonl.lock", 1)
    result = run(["-m", "x", str(lock), "-o", str(out)])
    assert result.exit_code == 2 and "--lock" in result.stderr and lock.exists()


def test_a_glob_leaves_out_every_file_the_job_writes(fake_backend, tmp_path):
    folder = tmp_path / "day"
    folder.mkdir()
    chats(folder / "a.jsonl", 3, "a")
    chats(folder / "b.jsonl", 2, "b")
    out, errors, metrics, lock = (folder / name for name in ("out.jsonl", "errors.jsonl", "metrics.jsonl", "run.jsonl"))
    chats(out, 1, "a")  # a first run got as far as a0
    errors.write_text("", encoding="utf-8")
    metrics.write_text("{}\n", encoding="utf-8")
    os.link(folder / "a.jsonl", tmp_path / "elsewhere.jsonl")  # a hard link outside the glob is still an input
    result = run(
        [
            "-m",
            "x",
            str(folder / "*.jsonl"),
            "-o",
            str(out),
            "--resume",
            "--on-error",
            "skip",
            "--errors-out",
            str(errors),
            "--metrics-out",
            str(metrics),
            "--lock",
            str(lock),
        ]
    )
    assert result.exit_code == 0, result.stderr
    assert sorted(r["id"] for r in read_jsonl(out.read_text())) == ["a0", "a1", "a2", "b0", "b1"]
    assert read_jsonl(errors.read_text()) == []
    assert json.loads(metrics.read_text())["records"] == 4
    notes = [line for line in result.stderr.splitlines() if "written by this job" in line]
    # the earlier metrics file was removed when the run began (never read, never left stale)
    assert len(notes) == 1 and all(str(p) in notes[0] for p in (out, errors)) and str(metrics) not in notes[0]
    assert not lock.exists()


def test_a_glob_never_reads_the_output_it_creates(fake_backend, tmp_path):
    chats(tmp_path / "a.jsonl", 5)
    out = tmp_path / "z-out.jsonl"  # sorts last: a glob expanded again after it appears would read it
    result = run(["-m", "x", str(tmp_path / "*.jsonl"), "-o", str(out), "--sort-window", "2"])
    assert result.exit_code == 0, result.stderr
    assert [r["id"] for r in read_jsonl(out.read_text())] == [f"c{i}" for i in range(5)]


def test_a_glob_that_matches_only_the_output_reads_nothing_not_stdin(fake_backend, tmp_path):
    out = chats(tmp_path / "out.jsonl", 2)
    result = run(
        ["-m", "x", str(tmp_path / "*.jsonl"), "-o", str(out), "--resume"],
        stdin='{"id": "from-stdin", "dialogue": "A: hi"}\n',
    )
    assert result.exit_code == 0 and "0 summarized" in result.stderr
    assert [r["id"] for r in read_jsonl(out.read_text())] == ["c0", "c1"]


# ---------------------------------------------------------------------------- resume files that are not ours


FOREIGN = {  # a file handed to --resume -> the line the refusal names
    "csv": (b"name,age\nbob,3\n", 1),
    "list": (b'{"id": "a", "summary": "x"}\n[1, 2]\n', 2),
    "string": (b'"just a string"\n', 1),
    "number": (b"42\n", 1),
    "null": (b"null\n", 1),
    "no id": (b'{"summary": "x"}\n', 1),
    "id list": (b'{"id": ["a"]}\n', 1),
    "id object": (b'{"id": {"a": 1}}\n', 1),
    "id null": (b'{"id": null}\n', 1),
    "id bool": (b'{"id": true}\n', 1),
    "id float": (b'{"id": 1.5}\n', 1),
    "deep": (b'{"id": "a", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", 1),
    "huge int": (b'{"id": ' + b"9" * 5000 + b"}\n", 1),
    "bad utf-8": (b'{"id": "caf\xe9"}\n', 1),
    "nul": (b'{"id": "a"}\n\x00\x00\x00\n', 2),
    "bad then torn": (b'{"id": "a"}\noops\n{"id": "b", "su', 2),
    "foreign torn tail": (b'{"id": "a"}\nplain text without a newline', 2),
    "one foreign line": (b"hello", 1),
}


@pytest.mark.parametrize("case", FOREIGN)
def test_resume_refuses_a_file_that_is_not_ours_and_changes_nothing(fake_backend, tmp_path, case):
    content, line = FOREIGN[case]
    source = chats(tmp_path / "in.jsonl", 2)
    out = tmp_path / "out.jsonl"
    out.write_bytes(content)
    result = run(["-m", "x", str(source), "-o", str(out), "--resume"])
    assert result.exit_code == 1
    assert f"{out}:{line}: cannot resume" in one_error_line(result.stderr)
    assert out.read_bytes() == content  # no cut, no append
    assert "model x" not in result.stderr  # refused before the model loads
    assert leftover_locks(tmp_path) == []


@pytest.mark.parametrize(
    "content", [b'{"source": ["x"], "line": 1}\n', b'{"source": "x", "line": "1"}\n', b'{"source": "x"}\n', b"[]\n"]
)
def test_resume_refuses_an_errors_file_that_is_not_ours_before_touching_either(fake_backend, tmp_path, content):
    source = chats(tmp_path / "in.jsonl", 2)
    out, errors = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    out.write_bytes(b'{"id": "c0", "summary": "x"}\n{"id": "c1", "su')  # ours, with a torn tail
    errors.write_bytes(content)
    result = run(
        ["-m", "x", str(source), "-o", str(out), "--resume", "--on-error", "skip", "--errors-out", str(errors)]
    )
    assert result.exit_code == 1 and f"{errors}:1: cannot resume" in one_error_line(result.stderr)
    assert out.read_bytes() == b'{"id": "c0", "summary": "x"}\n{"id": "c1", "su'  # its torn tail waits too
    assert errors.read_bytes() == content


def test_resume_refuses_what_is_not_a_regular_file(fake_backend, tmp_path):
    result = run(
        [
            "-m",
            "x",
            str(chats(tmp_path / "in.jsonl", 1)),
            "-o",
            "/dev/full",
            "--resume",
            "--lock",
            str(tmp_path / "x.lock"),
        ]
    )
    assert result.exit_code == 1 and "/dev/full: cannot resume: not a regular file" in one_error_line(result.stderr)


def test_a_torn_tail_of_ours_or_of_zeros_is_still_dropped(tmp_path):
    out = tmp_path / "out.jsonl"
    for tail in (b'{"id": "b", "summ', b'{"i', b"\x00" * 300, b""):
        out.write_bytes(b'{"id": "a", "summary": "x"}\n\n' + tail)
        assert read_resumed(str(out)).done == {"a": 1}
        assert out.read_bytes() == b'{"id": "a", "summary": "x"}\n\n'
    out.write_bytes(b'{"id": 7}\n')  # an integer id, as an input may give one
    assert read_resumed(str(out)).done == {"7": 1}


def test_an_endless_line_in_a_resume_file_is_refused_without_holding_it(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"id": "a"}\n{"id": "' + b"x" * 50_000 + b'"}\n')
    with pytest.raises(DataError, match=r"out.jsonl:2: cannot resume: a line over the 4,096-byte limit"):
        read_resumed(str(out), limit=4096)


VALID = [json.dumps({"id": f"r{i}", "summary": "s " * i}).encode() + b"\n" for i in range(6)]
ERRORS = [
    json.dumps({"source": "in.jsonl", "line": i, "reason": "bad", "raw": None}).encode() + b"\n" for i in range(4)
]


@st.composite
def mutated(draw, lines: list[bytes]) -> bytes:
    """A file of ours with random damage: bytes flipped, inserted or cut, or nothing but random bytes."""
    data = bytearray(b"".join(draw(st.lists(st.sampled_from(lines), max_size=6))))
    if draw(st.booleans()):
        return draw(st.binary(max_size=200))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "cut"]))
        if action == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=12))
        elif action == "cut":
            del data[at:]
    return bytes(data)


@pytest.mark.property
@given(kind=st.sampled_from(["output", "errors"]), data=st.data())
def test_random_damage_is_a_clean_refusal_or_a_valid_resume_set(tmp_path, kind, data):
    content = data.draw(mutated(VALID if kind == "output" else ERRORS))
    path = tmp_path / f"{kind}.jsonl"
    path.write_bytes(content)
    try:
        resumed = (
            read_resumed(str(path), limit=4096)
            if kind == "output"
            else read_resumed(str(tmp_path / "none.jsonl"), str(path), 4096)
        )
        found = resumed.done if kind == "output" else resumed.seen
    except DataError as exc:  # a refusal: one line, naming the file, nothing changed
        assert str(exc).startswith(f"{path}") and "\n" not in str(exc)
        assert path.read_bytes() == content
        return
    after = path.read_bytes()
    whole = content[: content.rfind(b"\n") + 1]
    assert after in (content, whole)  # at most the torn tail was cut
    lines = [json.loads(line) for line in after.splitlines() if line.strip(b" \t\r\n")]
    assert (sum(found.values()) if kind == "output" else len(found)) <= len(lines)
    keys = {str(line["id"]) for line in lines} if kind == "output" else {(e["source"], e["line"]) for e in lines}
    assert set(found) == keys


# ---------------------------------------------------------------------------- write errors


class FailingDisk(io.RawIOBase):
    """A file that takes ``budget`` bytes, then part of one more write (a torn line), then fails with
    ``code``: as a filling disk (ENOSPC) or a dying one (EIO) behaves under a buffered writer."""

    def __init__(self, path: str, budget: int, code: int):
        self.name = path
        self.file = open(path, "ab")
        self.budget = budget
        self.code = code

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if self.budget <= 0:
            raise OSError(self.code, os.strerror(self.code))
        part = bytes(data[: self.budget])
        self.file.write(part)
        self.file.flush()
        self.budget -= len(part)
        return len(part)

    def close(self) -> None:
        self.file.close()
        super().close()


def failing_output(monkeypatch, target: Path, budget: int, code: int) -> None:
    real = runner.open_output

    def open_output(path, append):
        if path != str(target):
            return real(path, append)
        return io.TextIOWrapper(io.BufferedWriter(FailingDisk(path, budget, code)), encoding="utf-8")

    monkeypatch.setattr(runner, "open_output", open_output)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_a_failing_disk_is_one_line_and_resume_finishes_the_job(fake_backend, monkeypatch, tmp_path, code):
    source = chats(tmp_path / "in.jsonl", 40)
    out = tmp_path / "out.jsonl"
    args = ["-m", "x", str(source), "-o", str(out), "--max-batch-size", "2", "--sort-window", "4"]
    with monkeypatch.context() as patch:
        failing_output(patch, out, budget=700, code=code)
        result = run(args)
    assert result.exit_code == 1
    assert f"{out}: cannot write ({os.strerror(code)})" in one_error_line(result.stderr)
    assert leftover_locks(tmp_path) == []
    before = out.read_bytes()
    whole = before[: before.rfind(b"\n") + 1]
    assert 5 <= whole.count(b"\n") < 40 and whole != before  # some records, then a torn line
    resumed = run(args + ["--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    assert out.read_bytes().startswith(whole)  # nothing written before the failure was lost
    ids = [r["id"] for r in read_jsonl(out.read_text())]
    assert sorted(ids) == sorted(f"c{i}" for i in range(40)) and len(ids) == 40


def test_output_to_dev_full_is_one_line_and_leaves_no_lock(fake_backend, tmp_path):
    lock = tmp_path / "job.lock"
    result = run(["-m", "x", str(chats(tmp_path / "in.jsonl", 3)), "-o", "/dev/full", "--lock", str(lock)])
    assert result.exit_code == 1
    assert "/dev/full: cannot write (No space left on device)" in one_error_line(result.stderr)
    assert not lock.exists()


def test_an_errors_file_that_cannot_be_written_keeps_the_output_and_resume_goes_on(fake_backend, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(json.dumps({"id": f"e{i}", "dialogue": f"A: {i}"}) + "\n" for i in range(3))
        + '{"id": "bad"}\n'
        + json.dumps({"id": "e3", "dialogue": "A: 3"})
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    args = ["-m", "x", str(source), "-o", str(out), "--on-error", "skip"]
    result = run(args + ["--errors-out", "/dev/full"])
    assert result.exit_code == 1 and "/dev/full: cannot write" in one_error_line(result.stderr)
    assert [r["id"] for r in read_jsonl(out.read_text())] == ["e0", "e1", "e2"]  # flushed before the failure
    errors = tmp_path / "errors.jsonl"
    resumed = run(args + ["--errors-out", str(errors), "--resume"])
    assert resumed.exit_code == 3, resumed.stderr
    assert [r["id"] for r in read_jsonl(out.read_text())] == ["e0", "e1", "e2", "e3"]
    assert [e["line"] for e in read_jsonl(errors.read_text())] == [4]
    assert leftover_locks(tmp_path) == []


def test_metrics_that_cannot_be_written_are_one_line_and_exit_1(fake_backend, tmp_path):
    out = tmp_path / "out.jsonl"
    result = run(["-m", "x", str(chats(tmp_path / "in.jsonl", 3)), "-o", str(out), "--metrics-out", "/dev/full"])
    assert result.exit_code == 1 and "/dev/full: cannot write the metrics" in one_error_line(result.stderr)
    assert len(read_jsonl(out.read_text())) == 3 and leftover_locks(tmp_path) == []


def read_only(monkeypatch, folder: Path) -> None:
    """A read-only folder, even for root (whom chmod does not stop): opening in it fails with EACCES."""
    folder.mkdir()
    folder.chmod(0o555)
    real = open

    def guarded(file, *args, **kwargs):
        if isinstance(file, (str, Path)) and Path(file).parent == folder:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real(file, *args, **kwargs)

    monkeypatch.setattr(outputs, "open", guarded, raising=False)  # outputs.py's open: the writers
    monkeypatch.setattr(files, "open", guarded, raising=False)  # files.py's open: the lock


@pytest.mark.parametrize("lock_inside", [True, False])
def test_a_read_only_folder_is_one_line_and_leaves_no_lock(fake_backend, monkeypatch, tmp_path, lock_inside):
    folder = tmp_path / "ro"
    read_only(monkeypatch, folder)
    lock = [] if lock_inside else ["--lock", str(tmp_path / "job.lock")]
    result = run(["-m", "x", str(chats(tmp_path / "in.jsonl", 2)), "-o", str(folder / "out.jsonl"), *lock])
    assert result.exit_code == 1
    line = one_error_line(result.stderr)
    assert "Permission denied" in line and ("cannot create the lock" in line) == lock_inside
    assert leftover_locks(tmp_path) == []
    folder.chmod(0o755)


def test_stdout_on_a_full_disk_is_one_line_without_a_second_error_at_exit(tmp_path):
    with open("/dev/full", "w") as full:
        process = start_fake(["-m", "x"], tmp_path, stdout=full)
    process.stdin.write(json.dumps({"id": "a", "dialogue": "A: hi"}) + "\n")
    process.stdin.close()
    assert process.wait(timeout=60) == 1
    assert "<stdout>: cannot write (No space left on device)" in one_error_line(process.stderr.read())


# ---------------------------------------------------------------------------- the lock file


def test_the_lock_file_goes_when_the_run_ends(fake_backend, tmp_path):
    out = tmp_path / "out.jsonl"
    assert run(["-m", "x", str(chats(tmp_path / "in.jsonl", 2)), "-o", str(out)]).exit_code == 0
    assert out.exists() and leftover_locks(tmp_path) == []


def test_a_lock_removed_by_its_holder_as_we_open_it_is_taken_afresh(tmp_path, monkeypatch):
    path = tmp_path / "out.jsonl.lock"
    holder = OutputLock(str(path))
    with holder, pytest.raises(LockedError, match="is held by pid"):
        OutputLock(str(path)).__enter__()
    assert not path.exists()
    opened = []
    real_lock = OutputLock._lock

    def racing_lock(self):
        stream = real_lock(self)
        if not opened:
            os.unlink(self.path)  # the previous holder finished between our open and our flock
        opened.append(stream)
        return stream

    monkeypatch.setattr(OutputLock, "_lock", racing_lock)
    with OutputLock(str(path)) as lock:
        assert len(opened) == 2 and lock._still_ours() and path.read_text().startswith("pid ")
    assert not path.exists()


# ---------------------------------------------------------------------------- a stop while input is stalled


def start_fake(args: list[str], tmp_path: Path, stdout=subprocess.PIPE) -> subprocess.Popen:
    """The real command in a real process, with the fake backend; the test is the producer on its stdin."""
    return start_fake_command(args, tmp_path, stdout=stdout)


def wait_for(stream, text: str, timeout: float = 120) -> None:
    """Read stderr lines until one holds ``text`` (the process is then past its start-up)."""
    found = threading.Event()

    def scan():
        for line in stream:
            if text in line:
                found.set()
                return

    threading.Thread(target=scan, daemon=True).start()
    assert found.wait(timeout), f"never saw {text!r}"


def produce_then_stall(process: subprocess.Popen, count: int) -> None:
    for i in range(count):
        process.stdin.write(json.dumps({"id": f"s{i}", "dialogue": f"A: stalled {i}\nB: ok"}) + "\n")
    process.stdin.flush()  # and then nothing more: the producer sleeps, stdin stays open


def stop_and_time(process: subprocess.Popen, sig: int) -> tuple[int, float]:
    time.sleep(1.0)  # let the reader take what was sent
    started = time.monotonic()
    process.send_signal(sig)
    code = process.wait(timeout=30)
    return code, time.monotonic() - started


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_while_stdin_is_stalled_is_prompt_and_writes_every_record_read(tmp_path, sig, code):
    out = tmp_path / "out.jsonl"
    process = start_fake(["-m", "x", "-o", str(out), "--max-wait", "0"], tmp_path)
    produce_then_stall(process, 2)  # far fewer than a window: nothing summarized until the input ends
    wait_for(process.stderr, "model x")
    returned, seconds = stop_and_time(process, sig)
    process.stdin.close()
    assert (returned, seconds < 2.0) == (code, True), seconds
    assert [r["id"] for r in read_jsonl(out.read_text())] == ["s0", "s1"]
    assert leftover_locks(tmp_path) == []


def test_a_stall_after_full_windows_writes_the_partial_one_too(tmp_path):
    out = tmp_path / "out.jsonl"
    process = start_fake(["-m", "x", "-o", str(out), "--sort-window", "2", "--max-wait", "0", "-q"], tmp_path)
    produce_then_stall(process, 5)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or out.read_text().count("\n") < 4):
        time.sleep(0.05)
    returned, seconds = stop_and_time(process, signal.SIGTERM)
    process.stdin.close()
    assert returned == 143 and seconds < 2.0, seconds
    assert [r["id"] for r in read_jsonl(out.read_text())] == [f"s{i}" for i in range(5)]


def test_python_dash_m_with_the_tiny_model_stops_on_sigterm_while_stalled(tiny_model_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dialogsum_batch",
            "-m",
            str(tiny_model_dir),
            "-o",
            str(out),
            "--threads",
            "1",
            "--max-wait",
            "0",
        ],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    produce_then_stall(process, 2)
    wait_for(process.stderr, f"model {tiny_model_dir} on ")  # loaded (a first run converts before this line)
    returned, seconds = stop_and_time(process, signal.SIGTERM)
    process.stdin.close()
    assert returned == 143 and seconds < 3.0, seconds  # two real (tiny) summaries are made after the signal
    assert [r["id"] for r in read_jsonl(out.read_text())] == ["s0", "s1"]


@pytest.mark.slow
def test_two_processes_stop_on_sigterm_while_stalled_and_write_every_record_read(tiny_model_dir, tmp_path):
    """Under torchrun the launcher passes SIGTERM to both ranks; the last share is finished on both anyway."""
    out = tmp_path / "out.jsonl"
    command = [
        sys.executable,
        *TORCHRUN,
        "-m",
        "dialogsum_batch",
        "-m",
        str(tiny_model_dir),
        "-o",
        str(out),
        "--threads",
        "1",
        "--max-wait",
        "0",
    ]
    process = subprocess.Popen(
        command, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=launch_env()
    )
    produce_then_stall(process, 3)
    wait_for(process.stderr, "on 2 processes", timeout=180)
    _, seconds = stop_and_time(process, signal.SIGTERM)  # torchrun itself exits 1 on a SIGTERM
    process.stdin.close()
    assert seconds < 10.0, seconds
    assert [r["id"] for r in read_jsonl(out.read_text())] == ["s0", "s1", "s2"]
    assert leftover_locks(tmp_path) == []


def test_the_feed_ends_at_a_stop_and_hands_on_a_reader_failure():
    stop = threading.Event()

    def stalled():
        yield 1
        yield 2
        time.sleep(60)  # a producer that went quiet
        yield 3

    with Feed(stalled(), stop.is_set, poll=0.02) as feed:
        taken = []
        for item in feed:
            taken.append(item)
            if len(taken) == 2:
                stop.set()
        assert taken == [1, 2] and feed.stopped

    def broken():
        yield "a"
        raise RuntimeError("reader bug")

    with Feed(broken(), lambda: False) as feed, pytest.raises(RuntimeError, match="reader bug"):
        list(feed)
    with Feed(iter(range(1000)), lambda: False, size=4) as feed:
        assert list(feed) == list(range(1000)) and not feed.stopped
