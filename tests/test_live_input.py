"""Live input: a producer that writes now and then sees each summary about ``--max-wait`` seconds after its
record, while its stdin stays open; with ``--max-wait 0`` windows wait to fill, as before."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REPO, TORCHRUN, launch_env, read_jsonl, start_fake_command

from dialogsum_batch.cli import main
from dialogsum_batch.inference.batching import FLUSH, windows
from dialogsum_batch.inference.feed import Feed


def record(i: int) -> str:
    return json.dumps({"id": f"r{i}", "dialogue": f"A: live message {i}\nB: got it"}) + "\n"


# ---------------------------------------------------------------------------- the pieces


def test_a_flush_ends_the_window_read_so_far_and_is_never_an_item():
    stream = [FLUSH, 1, FLUSH, FLUSH, 2, 3, 4, FLUSH, 5]
    assert list(windows(stream, 2)) == [[1], [2, 3], [4], [5]]
    assert list(windows(stream, 2, closes=lambda item: item == 2)) == [[1], [2], [3, 4], [5]]
    assert [window.live for window in windows(stream, 2)] == [True, False, True, False]  # a FLUSH ended it, or not


def test_the_feed_flushes_once_per_stall_and_never_under_steady_input():
    def pausing():
        yield 1
        yield 2
        time.sleep(0.8)  # the producer goes quiet, then comes back
        yield 3

    with Feed(pausing(), lambda: False, poll=0.02, max_wait=0.3) as feed:
        assert list(feed) == [1, 2, FLUSH, 3]
    with Feed(pausing(), lambda: False, poll=0.02, max_wait=0) as feed:
        assert list(feed) == [1, 2, 3]  # 0: no flushes, full windows as before
    with Feed(iter(range(500)), lambda: False, size=4, max_wait=0.5) as feed:
        assert list(feed) == list(range(500))  # always ready: nothing to flush


def test_a_full_window_starts_the_next_records_wait_afresh():
    """After a full window the clock restarts: a record is flushed after waiting max_wait itself, not
    because a record of an earlier window was taken long ago."""

    def steady_then_short_stall():
        for item in range(6):
            yield item
            time.sleep(0.1)  # 0.6 s in all: longer than max_wait, yet each window is full before it
        time.sleep(0.15)  # a short stall: shorter than max_wait after the last window began

    with Feed(steady_then_short_stall(), lambda: False, poll=0.02, max_wait=0.35, window=3) as feed:
        assert list(feed) == list(range(6))  # no FLUSH: both windows filled within max_wait of their start
    with Feed(steady_then_short_stall(), lambda: False, poll=0.02, max_wait=0.35) as feed:
        assert FLUSH in list(feed)  # without windows the first record's clock runs on and flushes


def test_a_steady_slow_producer_is_flushed_too_though_it_never_pauses_for_max_wait():
    def steady():
        for i in range(12):
            time.sleep(0.1)
            yield i

    with Feed(steady(), lambda: False, poll=0.02, max_wait=0.35) as feed:
        taken = list(feed)
    runs = "".join("|" if item is FLUSH else "x" for item in taken).split("|")
    assert len(runs) >= 3 and max(map(len, runs)) <= 5, taken  # each record waited about 0.35 s at most


def test_the_command_summarizes_a_record_while_the_producer_holds_stdin_open(fake_backend):
    """In process, on a real pipe: the first record is batched alone before the second is even written."""
    read_end, write_end = os.pipe()
    first_batch: list[bool] = []

    def produce():
        with os.fdopen(write_end, "w") as producer:
            producer.write(record(0))
            producer.flush()
            first_batch.append(wait_until(lambda: fake_backend.batches, 10.0))  # stdin still open
            producer.write(record(1))

    thread = threading.Thread(target=produce)
    thread.start()
    with os.fdopen(read_end, "rb") as stdin:
        result = CliRunner().invoke(main, ["-m", "x", "-q", "--max-wait", "0.2"], input=stdin)
    thread.join()
    assert result.exit_code == 0, result.stderr
    assert first_batch == [True] and fake_backend.batches == [1, 1]
    assert [row["id"] for row in read_jsonl(result.stdout)] == ["r0", "r1"]


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


# ---------------------------------------------------------------------------- a real process, the tiny model


class Live:
    """``python -m dialogsum_batch`` on the tiny model, the test its producer on stdin and its consumer on
    stdout (lines taken on a thread, so a read can time out)."""

    def __init__(self, model: Path, *options: str, launcher: tuple[str, ...] = ()):
        command = [
            sys.executable,
            *launcher,
            "-m",
            "dialogsum_batch",
            "-m",
            str(model),
            "--threads",
            "1",
            "--num-beams",
            "1",
            "--max-new-tokens",
            "8",
            *options,
        ]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=launch_env(),
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.started = threading.Event()
        threading.Thread(target=self._pump, args=(self.process.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.process.stderr, self._startup), daemon=True).start()

    @staticmethod
    def _pump(stream, handle) -> None:
        for line in stream:
            handle(line)

    def _startup(self, line: str) -> None:
        if "info: model " in line:  # the model is loaded: from here on only the input sets the pace
            self.started.set()

    def send(self, text: str) -> None:
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def next_line(self, timeout: float) -> dict | None:
        try:
            return json.loads(self.lines.get(timeout=timeout))
        except queue.Empty:
            return None

    def close(self) -> int:
        self.process.stdin.close()
        return self.process.wait(timeout=60)


@pytest.fixture
def live(tiny_model_dir):
    started: list[Live] = []

    def start(*options: str, launcher: tuple[str, ...] = ()) -> Live:
        job = Live(tiny_model_dir, *options, launcher=launcher)
        started.append(job)
        assert job.started.wait(180), "the model never loaded"
        return job

    yield start
    for job in started:  # after a failure: end of input first, so a launcher's processes end with it
        if job.process.poll() is None:
            with contextlib.suppress(OSError):
                job.process.stdin.close()
            try:
                job.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                job.process.kill()
                job.process.wait()


def test_each_summary_reaches_stdout_while_stdin_is_still_open(live):
    job = live("--max-wait", "1")
    job.send(record(0))
    first = job.next_line(timeout=10)
    assert first is not None and first["id"] == "r0", "no summary while stdin was open"
    job.send(record(1))
    second = job.next_line(timeout=10)
    assert second is not None and second["id"] == "r1"
    assert job.close() == 0 and job.next_line(timeout=0.5) is None


def test_max_wait_0_waits_for_the_window_or_the_end_of_input(live):
    job = live("--max-wait", "0")
    job.send(record(0))
    assert job.next_line(timeout=3) is None  # the window is not full and the input has not ended
    assert job.close() == 0
    assert job.next_line(timeout=10)["id"] == "r0"


@pytest.mark.slow
def test_two_processes_write_each_summary_while_stdin_is_still_open(live):
    """Under torchrun the main process reads, deals the flushed window and writes, as one process does."""
    job = live("--max-wait", "1", launcher=TORCHRUN)
    for i in range(3):
        job.send(record(i))
    firsts = [job.next_line(timeout=20) for _ in range(3)]
    assert [row and row["id"] for row in firsts] == ["r0", "r1", "r2"], "no summaries while stdin was open"
    job.send(record(3))
    assert (job.next_line(timeout=20) or {}).get("id") == "r3"
    assert job.close() == 0


def test_max_wait_must_not_be_negative():
    result = CliRunner().invoke(main, ["-m", "x", "--max-wait", "-1"], input="")
    assert result.exit_code == 2 and "--max-wait" in result.stderr


def test_a_stop_while_a_flushed_window_is_summarized_finishes_that_window(tmp_path):
    """The records of a window a stall flushed came from a producer that cannot send them again: a SIGTERM
    that lands while they are being summarized writes them all, then stops (143)."""
    process = start_fake_command(["-m", "x", "--max-wait", "0.3", "--max-batch-size", "1"], tmp_path, delay=0.4)
    try:
        process.stdin.write("".join(record(i) for i in range(4)))
        process.stdin.flush()
        assert json.loads(process.stdout.readline())["id"] == "r0"  # the flushed window is being summarized
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        rows = [json.loads(line) for line in process.stdout.read().splitlines() if line.strip()]
    finally:
        process.kill()
        process.stdin.close()
    assert code == 143
    assert [row["id"] for row in rows] == ["r1", "r2", "r3"]


def test_live_input_is_on_by_default():
    help_text = CliRunner().invoke(main, ["summarize", "--help"]).output
    assert "--max-wait SECONDS" in help_text and "[default: 1.0" in help_text.split("--max-wait", 1)[1][:400]
