"""The batch allocator: the command's summarize and evaluate keep freed memory for the next batch (glibc), a
library caller's process is left as it is, and the user's own tuning or opt-out wins."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest
from click.testing import CliRunner
from conftest import launch_env, read_jsonl, write_jsonl

from dialogsum_batch import allocator
from dialogsum_batch.cli import main
from dialogsum_batch.fixtures.synthetic import generate

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator is glibc's")

REFAULTS = """
import ctypes, resource, sys
from dialogsum_batch.allocator import keep_freed_memory
chosen = keep_freed_memory() if sys.argv[1] == "kept" else "untouched"
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 64 << 20  # a buffer as large as a batch's activations
faults = []
for _ in range(4):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(chosen, faults[1:], sep="|")
"""


def refaults(mode: str) -> tuple[str, list[int]]:
    """In a fresh process: the allocator chosen, and the page faults of the 2nd-4th 64 MiB malloc-touch-free."""
    done = subprocess.run([sys.executable, "-c", REFAULTS, mode], capture_output=True, text=True, env=launch_env())
    assert done.returncode == 0, done.stderr
    chosen, faults = done.stdout.split("|")
    return chosen, json.loads(faults)


@glibc
def test_kept_memory_is_reused_without_faulting_its_pages_in_again():
    chosen, kept = refaults("kept")
    assert chosen == allocator.KEPT
    assert max(kept) < 100  # the pages stayed: a few faults of bookkeeping at most
    _, default = refaults("default")
    assert min(default) > 10_000  # glibc's default: a fresh mmap each time, 16,384 pages faulted in


@pytest.mark.parametrize(
    "environ",
    [{"DIALOGSUM_ALLOCATOR": "system"}, {"MALLOC_ARENA_MAX": "4"}, {"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0"}],
)
def test_an_opt_out_or_the_users_own_tuning_leaves_glibc_alone(environ, monkeypatch):
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda *_: pytest.fail("mallopt called"))
    assert allocator.keep_freed_memory(environ) == allocator.SYSTEM


@glibc
def test_the_command_runs_with_it_and_says_so_and_the_summaries_do_not_change(tiny_model_dir, tmp_path):
    chats = write_jsonl(tmp_path / "chats.jsonl", list(generate(12, seed=5)))
    runs = {}
    for name, extra in (("kept", {}), ("system", {"DIALOGSUM_ALLOCATOR": "system"})):
        metrics = tmp_path / f"{name}.json"
        args = ["-m", str(tiny_model_dir), str(chats), "--metrics-out", str(metrics), "--max-new-tokens", "12"]
        env = {**launch_env(), "DIALOGSUM_CACHE": str(tmp_path / "cache"), **extra}
        done = subprocess.run(
            [sys.executable, "-m", "dialogsum_batch", *args], capture_output=True, text=True, env=env, timeout=300
        )
        assert done.returncode == 0, done.stderr
        runs[name] = ([row["summary"] for row in read_jsonl(done.stdout)], json.loads(metrics.read_text()))
    assert runs["kept"][1]["allocator"] == allocator.KEPT
    assert runs["system"][1]["allocator"] == allocator.SYSTEM
    assert runs["kept"][0] == runs["system"][0]


def test_a_caller_of_the_group_keeps_its_own_allocator(fake_backend, tmp_path):
    metrics = tmp_path / "m.json"
    result = CliRunner().invoke(main, ["-m", "x", "--metrics-out", str(metrics), "-"], input="A: hi\nB: hey\n")
    assert result.exit_code == 0, result.output
    assert json.loads(metrics.read_text())["allocator"] == allocator.chosen == allocator.SYSTEM
