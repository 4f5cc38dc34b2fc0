"""The conversion-cache and thread benchmarks: their invoke tasks, and the thread benchmark on the tiny model."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from invoke import MockContext, Result

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import bench_threads  # noqa: E402
import common  # noqa: E402


def test_the_tasks_run_the_scripts_with_their_options():
    from dialogsum_batch.tasks.bench import bench_ct2_cache
    from dialogsum_batch.tasks.bench import bench_threads as threads_task

    c = MockContext(run=Result(exited=0), repeat=True)
    bench_ct2_cache(c, records=8, beams="1", repeats=1, trained="runs/smoke", work_dir="w")
    threads_task(c, records=8, busy_seconds=5, repeats=1, cases="idle")
    first, second = [call.args[0] for call in c.run.call_args_list]
    assert "bench/bench_ct2_cache.py --records 8 --beams 1 --repeats 1" in first
    assert "--trained runs/smoke" in first and "--work-dir w" in first and "--threads" not in first
    assert "bench/bench_threads.py --records 8 --busy-seconds 5 --repeats 1 --cases idle" in second


@pytest.mark.slow
def test_the_thread_benchmark_compares_the_default_with_every_explicit_count(tmp_path, tiny_model_dir):
    work = tmp_path / "work"
    shutil.copytree(tiny_model_dir, work / "perf-tiny")
    (work / "perf-tiny" / "bench_spec.json").write_text(json.dumps({**asdict(common.MODELS["tiny"]), "seed": 0}))
    report = bench_threads.main(
        [
            "--model",
            "tiny",
            "--records",
            "4",
            "--max-new-tokens",
            "2",
            "--repeats",
            "1",
            "--cases",
            "idle,concurrent-job",
            "--source",
            "synthetic",
            "--work-dir",
            str(work),
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    cores = len(bench_threads.os.sched_getaffinity(0))
    for case in report["cases"]:
        assert [run["asked"] for run in case["runs"]] == [0, *range(1, cores + 1)]
        assert case["runs"][0]["threads"] == 1  # the tiny model: one thread whatever is idle
        assert case["ratio"] > 0 and case["best_explicit"] in range(1, cores + 1)
    saved = json.loads((tmp_path / "out" / "bench_threads.json").read_text())
    assert [case["case"] for case in saved["cases"]] == ["idle", "concurrent-job"]
    assert "0 (default)" in (tmp_path / "out" / "bench_threads.md").read_text()
