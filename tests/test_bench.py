"""Smoke tests of the benchmark scripts on a handful of records, and of their invoke tasks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from invoke import MockContext, Result

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import bench_latency  # noqa: E402
import bench_memory  # noqa: E402
import bench_throughput  # noqa: E402
import common  # noqa: E402


@pytest.fixture
def work_dir(tmp_path, tiny_model_dir) -> Path:
    """A benchmark work folder already holding the session's tiny model (it is the same build)."""
    folder = tmp_path / "work"
    shutil.copytree(tiny_model_dir, folder / "perf-tiny")
    marker = {**asdict(common.MODELS["tiny"]), "seed": 0}
    (folder / "perf-tiny" / "bench_spec.json").write_text(json.dumps(marker))
    return folder


def test_throughput_runs_every_anchor_and_reports_ratios(work_dir, tmp_path):
    out = tmp_path / "results"
    results = bench_throughput.main(
        [
            "--model",
            "tiny",
            "--records",
            "12",
            "--beams",
            "1",
            "--max-new-tokens",
            "3",
            "--repeats",
            "1",
            "--work-dir",
            str(work_dir),
            "--output-dir",
            str(out),
        ]
    )
    anchors = results[0]["anchors"]
    assert set(anchors) == {"notebook", "fixed-8", "ctranslate2", "ours"}
    assert anchors["ours"]["ours_speedup"] == 1.0
    assert anchors["notebook"]["padding_efficiency"] < anchors["ours"]["padding_efficiency"] <= 1.0
    for figures in anchors.values():
        assert figures["dialogues_per_second"] > 0 and figures["peak_rss_mb"] > 0
        assert figures["generated_tokens"] > 0
    assert anchors["ours"]["generated_tokens"] == anchors["fixed-8"]["generated_tokens"]  # same decoding, all rows
    saved = json.loads((out / "throughput-tiny.json").read_text())
    assert saved["results"][0]["case"]["model"] == "tiny"
    assert "| tiny | 1 | ours |" in (out / "throughput-tiny.md").read_text()


def test_memory_compares_fresh_processes_and_writes_the_verdict(work_dir, tmp_path):
    out = tmp_path / "results"
    result = bench_memory.main(
        [
            "--sizes",
            "10,30",
            "--max-new-tokens",
            "2",
            "--limit",
            "5",
            "--work-dir",
            str(work_dir),
            "--output-dir",
            str(out),
        ]
    )
    assert [run["records"] for run in result["runs"]] == [10, 30]
    assert all(run["written"] == run["records"] for run in result["runs"])
    assert all(run["peak_rss_mb"] > 50 for run in result["runs"])  # torch alone is more than that
    assert result["flat"] and result["ratio"] == pytest.approx(
        result["runs"][1]["peak_rss_mb"] / result["runs"][0]["peak_rss_mb"], abs=1e-3
    )
    assert "PASS" in (out / "memory.md").read_text()


def test_latency_times_each_record_from_stdin_to_stdout(work_dir, tmp_path):
    out = tmp_path / "results"
    result = bench_latency.main(
        [
            "--rates",
            "20:3",
            "--max-waits",
            "0.3,0",
            "--max-new-tokens",
            "2",
            "--work-dir",
            str(work_dir),
            "--output-dir",
            str(out),
        ]
    )
    live, filling = result["runs"]
    assert (live["max_wait"], filling["max_wait"], live["records"]) == (0.3, 0.0, 3)
    assert 0 < live["first_s"] <= live["max_s"] and filling["batches"] == 1  # one window, cut by the end
    assert "| 20 | 3 | 0.3 |" in (out / "latency-tiny.md").read_text()


def test_padded_vocabulary_has_exactly_the_asked_size():
    vocab = common.padded_vocab(3000)
    assert len(vocab) == 3000 and len({piece for piece, _ in vocab}) == 3000
    assert [piece for piece, _ in vocab[:2]] == ["<pad>", "</s>"]


def test_gpu_check_refuses_without_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the refusal is for machines without one")
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_check.py")],
        capture_output=True,
        text=True,
        env={"OUT": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=120,
    )
    assert done.returncode != 0 and "no CUDA device" in done.stderr
    assert not (tmp_path / "gpu_check.json").exists()


def test_bench_tasks_run_the_scripts():
    from dialogsum_batch.tasks.bench import bench, gpu_check

    c = MockContext(run=Result(exited=0), repeat=True)
    bench(c, models="tiny", beams="1", work_dir="w", output_dir="o")
    commands = [call.args[0] for call in c.run.call_args_list]
    assert "bench/bench_memory.py" in commands[0] and "--sizes 2000,20000" in commands[0]
    assert "bench/bench_throughput.py" in commands[1] and "--model tiny --records 0 --beams 1" in commands[1]
    assert all("--work-dir w" in command and "--output-dir o" in command for command in commands)
    gpu_check(c, only="allocator", cpu_smoke=True)
    assert c.run.call_args_list[-1].args[0].endswith("bench/gpu_check.py --only allocator --cpu-smoke")


def test_bench_backends_task_runs_the_script():
    from dialogsum_batch.tasks.bench import bench_backends

    c = MockContext(run=Result(exited=0), repeat=True)
    bench_backends(c, records=16, beams="1")
    command = c.run.call_args.args[0]
    assert "bench/bench_backends.py" in command and "--records 16" in command and "--beams 1" in command
    assert "--work-dir" not in command


def test_bench_default_task_runs_the_script():
    from dialogsum_batch.tasks.bench import bench_default

    c = MockContext(run=Result(exited=0), repeat=True)
    bench_default(c, threads="1", repeats=1, quality=False)
    command = c.run.call_args.args[0]
    assert "bench/bench_default.py" in command and "--threads 1" in command and "--no-quality" in command


def test_batch_plan_is_within_budget_longest_first_and_loses_no_row():
    """The engine's batch plan (what the throughput figures rest on), over random length mixes."""
    import random

    from dialogsum_batch.inference.batching import padded_size, plan_batches

    rng = random.Random(1)
    for _ in range(200):
        lengths = [rng.randint(1, 300) for _ in range(rng.randint(0, 150))]
        budget, rows = rng.choice([50, 400, 4096]), rng.randint(1, 70)
        plan = plan_batches(lengths, budget, rows)
        assert sorted(i for batch in plan for i in batch) == list(range(len(lengths)))
        assert all(len(b) <= rows and (len(b) == 1 or padded_size(lengths, b) <= budget) for b in plan)
        heads = [lengths[b[0]] for b in plan]
        assert heads == sorted(heads, reverse=True) and all(lengths[b[0]] == max(lengths[i] for i in b) for b in plan)


def test_batch_plan_pads_less_than_greedy_filling_at_a_length_gap():
    from dialogsum_batch.inference.batching import padded_size, plan_batches

    lengths = [900] + [100] * 80  # one long chat, many short ones
    plan = plan_batches(lengths, 8192, 64)
    assert plan[0] == [0]  # the long one alone, not at the head of eight short ones
    assert sum(padded_size(lengths, b) for b in plan) == sum(lengths)
