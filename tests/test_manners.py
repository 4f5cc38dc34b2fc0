"""Issue 24's manners, through the front door: what a cron user or a person at a terminal meets first."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest
from click.testing import CliRunner
from conftest import read_jsonl, start_fake_command

from dialogsum_batch.cli import main


def run(args, stdin=None):
    return CliRunner().invoke(main, args, input=stdin, catch_exceptions=False)


def as_jsonl(rows):
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


# ---------------------------------------------------------------------------- an endless line


def feed_for_ever(process: subprocess.Popen, head: str, seconds: float) -> threading.Thread:
    """Write ``head``, then bytes with no newline, for up to ``seconds`` or until the process stops reading."""

    def feed() -> None:
        deadline = time.monotonic() + seconds
        try:
            process.stdin.write(head)
            while time.monotonic() < deadline and process.poll() is None:
                process.stdin.write("x" * 65536)
                process.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    "head", ['{"id": "ok", "dialogue": "A: hi"}\n{"dialogue": "', '{"dialogue": "'], ids=["after-a-record", "first"]
)
def test_fail_mode_stops_at_a_line_that_never_ends(tmp_path, head):
    process = start_fake_command(["-m", "x", "--max-line-bytes", "1000", "--on-error", "fail"], tmp_path)
    feeder = feed_for_ever(process, head, seconds=60)
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail("--on-error fail kept reading a line that never ends")
    feeder.join(5)
    stderr, stdout = process.stderr.read(), process.stdout.read()
    assert code == 1
    assert "<stdin>:" in stderr and "over the 1,000-byte limit (--max-line-bytes)" in stderr
    assert [row["id"] for row in read_jsonl(stdout)] == (["ok"] if head.startswith('{"id"') else [])
