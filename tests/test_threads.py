"""``--threads 0``: threads from the cores idle now (/proc/stat sampled twice), shared by both backends."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialogsum_batch.backends import common
from dialogsum_batch.backends.common import auto_threads, cpu_times, idle_cores, idle_cores_now
from dialogsum_batch.backends.ctranslate2 import cpu_threads, estimated_parameters

LARGE = 50_000_000  # parameters: above the small-model rule


def stat(*cpus: tuple[int, int, int, int]) -> str:
    """A /proc/stat with an aggregate line and one line per CPU: (user, system, idle, iowait) ticks."""
    lines = ["cpu  " + " ".join(str(sum(c[i] for c in cpus)) for i in range(4)) + " 0 0 0 0 0 0"]
    lines += [
        f"cpu{n} {user} 0 {system} {idle} {iowait} 0 0 0 0 0" for n, (user, system, idle, iowait) in enumerate(cpus)
    ]
    return "\n".join(lines + ["intr 12345 0 0", "ctxt 999", "btime 1700000000", "procs_running 2"]) + "\n"


def test_cpu_times_reads_idle_and_total_per_cpu():
    times = cpu_times(stat((100, 50, 800, 50), (10, 5, 980, 5)))
    assert times == {0: (850, 1000), 1: (985, 1000)}  # idle counts iowait; the aggregate line is left out


def test_idle_cores_adds_each_cpus_idle_share():
    before = cpu_times(stat((0, 0, 0, 0), (0, 0, 0, 0)))
    one_busy = cpu_times(stat((25, 0, 0, 0), (0, 0, 25, 0)))
    assert idle_cores(before, one_busy, {0, 1}) == pytest.approx(1.0)
    both_idle = cpu_times(stat((0, 0, 24, 1), (1, 0, 24, 0)))
    assert idle_cores(before, both_idle, {0, 1}) == pytest.approx(1.96)
    half = cpu_times(stat((10, 2, 12, 0), (0, 0, 25, 0)))
    assert idle_cores(before, half, {0, 1}) == pytest.approx(1.5)
    assert idle_cores(before, one_busy, {1}) == pytest.approx(1.0)  # only the CPUs this process may use count
    assert idle_cores(before, before, {0, 1}) == pytest.approx(2.0)  # no tick at all: asleep throughout


def sampled(monkeypatch, first: str, second: str, cpus=(0, 1)) -> None:
    """/proc/stat reads give ``first`` then ``second``; the affinity mask is ``cpus``; no real sleep."""
    reads = iter([first, second])
    monkeypatch.setattr(common, "PROC_STAT", type("Fake", (), {"read_text": lambda self: next(reads)})())
    monkeypatch.setattr(common, "usable_cpus", lambda: set(cpus))
    monkeypatch.setattr(common.time, "sleep", lambda seconds: None)


def test_an_idle_machine_right_after_a_busy_minute_gets_every_core(monkeypatch):
    monkeypatch.setattr(common.os, "getloadavg", lambda: (2.0, 1.5, 0.8))  # still remembers the finished job
    sampled(monkeypatch, stat((6000, 0, 100, 0), (6000, 0, 100, 0)), stat((6000, 1, 124, 0), (6001, 0, 124, 0)))
    assert auto_threads(LARGE) == 2


def test_a_core_busy_with_another_job_is_left_to_it(monkeypatch):
    monkeypatch.setattr(common.os, "getloadavg", lambda: (0.1, 0.1, 0.1))  # the job only just started
    sampled(monkeypatch, stat((0, 0, 0, 0), (0, 0, 0, 0)), stat((24, 1, 0, 0), (0, 0, 25, 0)))
    assert auto_threads(LARGE) == 1


def test_at_least_one_thread_and_small_models_get_one(monkeypatch):
    sampled(monkeypatch, stat((0, 0, 0, 0), (0, 0, 0, 0)), stat((25, 0, 0, 0), (25, 0, 0, 0)))
    assert auto_threads(LARGE) == 1
    sampled(monkeypatch, stat((0, 0, 0, 0), (0, 0, 0, 0)), stat((0, 0, 25, 0), (0, 0, 25, 0)))
    assert auto_threads(400_000) == 1  # the tiny model: two threads ran several times slower


def test_without_proc_stat_the_load_average_decides(monkeypatch, tmp_path):
    monkeypatch.setattr(common, "PROC_STAT", tmp_path / "missing")
    monkeypatch.setattr(common.os, "getloadavg", lambda: (1.2, 1.0, 1.0))
    assert idle_cores_now({0, 1, 2, 3}, 0) == pytest.approx(2.8)


def test_the_real_proc_stat_gives_a_sensible_count():
    if not Path("/proc/stat").is_file():
        pytest.skip("no /proc/stat here")
    cpus = common.usable_cpus()
    assert 0 <= idle_cores_now(cpus, 0.05) <= len(cpus) + 1e-9


def test_ctranslate2_follows_the_same_rule(monkeypatch, tmp_path):
    folder = tmp_path / "ct2"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"\0" * 1000)
    assert estimated_parameters(str(folder), "int8") == 1000
    assert estimated_parameters(str(folder), "float32") == estimated_parameters(str(folder), None) == 250
    assert estimated_parameters(str(folder), "bfloat16") == 500
    monkeypatch.setattr("dialogsum_batch.backends.ctranslate2.auto_threads", lambda parameters: parameters)
    assert cpu_threads(0, str(folder), "int8", "cpu") == 1000  # the estimate goes to the shared rule
    assert cpu_threads(3, str(folder), "int8", "cpu") == 3  # an explicit count stays
