"""Smoke tests of the benchmark scripts on a handful of records, and of their invoke tasks."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from invoke import MockContext, Result

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import bench_allocator  # noqa: E402
import bench_backends  # noqa: E402
import bench_ct2_cache  # noqa: E402
import bench_default  # noqa: E402
import bench_hostile  # noqa: E402
import bench_latency  # noqa: E402
import bench_memory  # noqa: E402
import bench_pytorch_path  # noqa: E402
import bench_threads  # noqa: E402
import bench_throughput  # noqa: E402
import common  # noqa: E402
import harness  # noqa: E402
import source_lengths  # noqa: E402

from dialogsum_batch.config import default_of  # noqa: E402


@pytest.fixture
def work_dir(tmp_path, tiny_model_dir) -> Path:
    """A benchmark work folder already holding the session's tiny model (it is the same build)."""
    folder = tmp_path / "work"
    shutil.copytree(tiny_model_dir, folder / "perf-tiny")
    (folder / "perf-tiny" / "bench_spec.json").write_text(json.dumps(common.marker_of(common.MODELS["tiny"], 0)))
    return folder


def dirs(work_dir: Path, out: Path) -> list[str]:
    return ["--work-dir", str(work_dir), "--output-dir", str(out)]


def test_throughput_runs_every_anchor_and_reports_ratios(work_dir, tmp_path):
    out = tmp_path / "results"
    argv = "--model tiny --records 12 --beams 1 --max-new-tokens 3 --repeats 1".split()
    results = bench_throughput.main([*argv, *dirs(work_dir, out)])
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


@pytest.mark.slow
def test_memory_compares_fresh_processes_and_writes_the_verdict(work_dir, tmp_path):
    out = tmp_path / "results"
    result = bench_memory.main(["--sizes", "10,30", "--max-new-tokens", "2", "--limit", "5", *dirs(work_dir, out)])
    assert [run["records"] for run in result["runs"]] == [10, 30]
    assert all(run["written"] == run["records"] for run in result["runs"])
    assert all(run["peak_rss_mb"] > 50 for run in result["runs"])  # Python and the model alone are more than that
    assert result["flat"] and result["ratio"] == pytest.approx(
        result["runs"][1]["peak_rss_mb"] / result["runs"][0]["peak_rss_mb"], abs=1e-3
    )
    assert "PASS" in (out / "memory.md").read_text()


@pytest.mark.slow
def test_latency_times_each_record_from_stdin_to_stdout(work_dir, tmp_path):
    out = tmp_path / "results"
    result = bench_latency.main(
        ["--rates", "20:3", "--max-waits", "0.3,0", "--max-new-tokens", "2", *dirs(work_dir, out)]
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
    assert "bench/bench_memory.py" in commands[0] and "--sizes" not in commands[0]  # left to the script
    assert "bench/bench_throughput.py" in commands[1] and "--model tiny --beams 1 --repeats 1" in commands[1]
    assert "--max-new-tokens" not in commands[1] and "--threads" not in commands[1]  # the command's defaults
    assert all("--work-dir w" in command and "--output-dir o" in command for command in commands)
    gpu_check(c, only="allocator", cpu_smoke=True)
    assert c.run.call_args_list[-1].args[0].endswith("bench/gpu_check.py --only allocator --cpu-smoke")


def test_bench_tasks_offer_their_help_tables_as_invoke_options():
    """The signature ``script_task`` builds is what Invoke parses: every option with its help line, switches."""
    from dialogsum_batch.tasks import collection
    from dialogsum_batch.tasks.bench import DEFAULT_HELP, THROUGHPUT_HELP

    tasks = collection()
    default = {arg.names[0]: arg for arg in tasks["bench-default"].get_arguments()}
    assert list(default) == [name.replace("_", "-") for name in DEFAULT_HELP]
    assert default["quality"].kind is bool and default["quality"].default is True
    assert default["work-dir"].default == "" and default["threads"].default is None
    assert all(arg.help for arg in default.values())
    throughput = [arg.names[0] for arg in tasks["bench-throughput"].get_arguments()]
    assert throughput == [name.replace("_", "-") for name in THROUGHPUT_HELP]


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


def test_bench_allocator_task_runs_the_script():
    from dialogsum_batch.tasks.bench import bench_allocator

    c = MockContext(run=Result(exited=0), repeat=True)
    bench_allocator(c, threads="1,2", source="synthetic")
    command = c.run.call_args.args[0]
    assert "bench/bench_allocator.py" in command and "--threads 1,2" in command and "--source synthetic" in command


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


# ---------------------------------------------------------------------------- the harness


@pytest.mark.parametrize(
    "script", [bench_backends, bench_ct2_cache, bench_latency, bench_memory, bench_throughput], ids=lambda m: m.__name__
)
def test_benchmark_defaults_are_the_commands(script):
    args = script.parse_args([])
    assert args.threads == default_of("threads") == 0  # the command's automatic choice
    if script not in (bench_latency, bench_memory):  # these two shorten summaries on purpose (memory, waiting)
        assert args.max_new_tokens == default_of("max_new_tokens")  # None: the model's own, as the command
    if script is bench_throughput:
        assert args.batch_tokens == default_of("batch_tokens")


def test_arguments_parse_lists_name_results_and_keep_the_command_line():
    args = bench_throughput.parse_args(["--model", "tiny,mid", "--beams", "1,4", "--anchors", "ours,fixed-8"])
    assert (args.beams, args.anchors, args.name) == ([1, 4], ["ours", "fixed-8"], "throughput-tiny-mid")
    assert args.command == "python bench/bench_throughput.py --model tiny,mid --beams 1,4 --anchors ours,fixed-8"
    with pytest.raises(SystemExit):
        bench_threads.parse_args(["--cases", "idle,rainy-day"])


def test_rounds_interleave_the_systems():
    calls = []
    runs = harness.rounds(["a", "b"], 3, lambda system: calls.append(system) or {"seconds": len(calls)})
    assert calls == ["a", "b"] * 3
    assert [run["seconds"] for run in runs["b"]] == [2, 4, 6] and harness.fastest(runs["b"])["seconds"] == 2


def test_the_command_line_leaves_unset_options_to_the_command():
    line = harness.summarize_command(["in.jsonl"], "m", output=Path("o.jsonl"), threads=0, max_new_tokens=None)
    assert line == ["-m", "dialogsum_batch", "summarize", "in.jsonl", "-m", "m", "-o", "o.jsonl", "--threads", "0"]
    loop = harness.summarize_command(["-"], "m", beams=2, options=["-q"], program=["loop.py"])
    assert loop == ["loop.py", "-", "-m", "m", "--num-beams", "2", "-q"]


def test_a_measured_process_reports_its_own_peak_memory_and_exit(tmp_path):
    grow = "import sys; block = bytearray(int(sys.argv[1]) * 2**20); block[::4096] = b'x' * len(block[::4096])"
    small = harness.run_process(["-c", grow, "1"])
    large = harness.run_process(["-c", grow, "200"])
    assert small.exit == 0 and large.peak_mib - small.peak_mib > 150  # the child's own VmHWM, not this process's
    fed = harness.run_process(
        ["-c", "import sys; print(sys.stdin.read().upper()); sys.exit(3)"], feed=lambda pipe: pipe.write(b"hi"), ok=(3,)
    )
    assert (fed.exit, fed.stdout.strip()) == (3, "HI")
    with pytest.raises(SystemExit, match="boom"):
        harness.run_process(["-c", "raise SystemExit('boom')"])


def test_results_start_with_the_machine_header_and_end_with_the_command(tmp_path):
    report = {"environment": common.environment(2), "command": "python bench/x.py --records 3", "value": 1}
    common.publish("x", report, "| a |\n|---|\n| 1 |", tmp_path)
    first, *_, last = (tmp_path / "x.md").read_text().strip().splitlines()
    assert "usable cores, threads 2; load average" in first and "after" in first and "transformers" in first
    assert last == "Reproduce: `python bench/x.py --records 3`"
    saved = json.loads((tmp_path / "x.json").read_text())
    assert saved["value"] == 1 and isinstance(saved["environment"]["load_after"], list)


# ---------------------------------------------------------------------------- every script, tiny


@pytest.mark.slow
def test_backends_measures_each_system_in_a_process_of_its_own(work_dir, tmp_path):
    argv = ["--model", "tiny", "--records", "4", "--beams", "1", "--max-new-tokens", "3", "--threads", "1"]
    bench_backends.main([*argv, *dirs(work_dir, tmp_path)])
    report = json.loads((tmp_path / "bench_backends.json").read_text())
    assert [row["system"] for row in report["results"]] == list(bench_backends.SYSTEMS)
    assert all(row["records"] == 4 and row["generated_tokens"] == 12 for row in report["results"])
    assert report["results"][0]["speedup"] == 1.0 and report["model"]["d_model"] == common.MODELS["tiny"].d_model
    assert "| ctranslate2 int8 | 1 |" in (tmp_path / "bench_backends.md").read_text()


@pytest.mark.slow
def test_default_runs_the_command_and_the_fixed_loop_in_whole_processes(work_dir, tmp_path):
    argv = ["--model", "tiny", "--records", "3", "--threads", "1", "--repeats", "1", "--no-quality"]
    report = bench_default.main([*argv, "--source", "synthetic", "--max-new-tokens", "3", *dirs(work_dir, tmp_path)])
    speed = {row["system"]: row for row in report["speed"]}
    assert set(speed) == set(bench_default.SYSTEMS) and speed[bench_default.LOOP]["speedup"] == 1.0
    assert speed[bench_default.LOOP]["round_speedups"] == [1.0] and len(speed["default"]["round_speedups"]) == 1
    assert speed["default"]["serving"] == "ctranslate2, float32" and speed["transformers fp32"]["peak_mib"] > 100
    assert speed["default"]["identical_to_transformers"] == 1.0  # greedy float32: the same summaries
    assert [row["system"] for row in report["first_run"]] == ["default", "--fast"]
    assert all(row["convert_seconds"] > 0 for row in report["first_run"])
    assert report["records"] == 3 and report["threads"] == [1]  # the shared arguments, recorded by the harness


@pytest.mark.slow
@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the batch allocator is glibc's")
def test_allocator_compares_the_kept_memory_with_glibcs_defaults(work_dir, tmp_path):
    argv = ["--model", "tiny", "--records", "3", "--threads", "1", "--repeats", "1", "--max-new-tokens", "3"]
    report = bench_allocator.main([*argv, "--source", "synthetic", *dirs(work_dir, tmp_path)])
    runs = {(row["system"], row["allocator"]): row for row in report["runs"]}
    assert set(runs) == {(s, a) for s in bench_allocator.SYSTEMS for a in bench_allocator.ALLOCATORS}
    kept, system = runs[("--fast", bench_allocator.KEPT)], runs[("--fast", bench_allocator.SYSTEM)]
    assert kept["page_faults"] > 1000 and system["page_faults"] > 1000  # counted per process, not zero
    assert kept["same_summaries"] == 1.0 and system["vs_glibc_defaults"] == 1.0


def test_source_lengths_counts_the_models_tokens(work_dir, tmp_path, capsys):
    argv = ["--model", "tiny", "--records", "4", "--source", "synthetic", "--work-dir", str(work_dir)]
    lengths = source_lengths.main(argv)
    assert 20 < lengths["tiny model"] < 400
    assert json.loads(capsys.readouterr().out)["mean_source_tokens"] == lengths


@pytest.mark.slow
def test_ct2_cache_converts_once_then_hits_the_cache(work_dir, tmp_path, tiny_model_dir):
    argv = ["--model", "tiny", "--records", "3", "--beams", "1", "--repeats", "1", "--max-new-tokens", "3"]
    argv += ["--trained", str(tiny_model_dir), "--trained-records", "3", "--source", "synthetic"]
    report = bench_ct2_cache.main([*argv, *dirs(work_dir, tmp_path)])
    assert [row["system"] for row in report["conversion"]] == ["ctranslate2 fp32", "ctranslate2 int8"]
    assert all(row["cached_process_seconds"] < row["first_process_seconds"] for row in report["conversion"])
    assert report["identical"] == {1: 1.0} and set(report["quality"]["rouge1"]) == set(bench_ct2_cache.SYSTEMS)


def test_pytorch_path_compares_attempts_with_the_fixed_loop(work_dir, tmp_path):
    argv = ["--model", "tiny", "--records", "5", "--threads", "1", "--attempts", "fixed-8,engine fp32"]
    argv += ["--repeats", "2", "--max-new-tokens", "3", "--source", "synthetic"]
    report = bench_pytorch_path.main([*argv, *dirs(work_dir, tmp_path)])
    fixed, engine = report["runs"]
    assert (fixed["vs_fixed_8"], engine["identical"]) == (1.0, 1.0) and len(engine["all_seconds"]) == 2
    assert (tmp_path / "pytorch-path-tiny.md").is_file()


@pytest.mark.slow
def test_hostile_line_is_one_error_record_in_a_measured_process(work_dir, tmp_path):
    model = common.model_dir("tiny", work_dir)
    lines = [json.dumps(row).encode() + b"\n" for row in common.dialogues(4, "synthetic")]
    run = bench_hostile.summarize_in_child(model, lines, 1, tmp_path, work_dir)  # a 1 MB line, 4 records around it
    assert (run["exit"], run["summaries"], run["errors"]) == (3, 4, 1) and run["peak_rss_mb"] > 20


def test_hostile_archive_load_runs_in_a_measured_process(tmp_path):
    py7zr = pytest.importorskip("py7zr")
    archive = tmp_path / "corpus.7z"
    with py7zr.SevenZipFile(archive, mode="w") as out:
        for split in ("train", "val", "test"):
            out.writestr(json.dumps(common.dialogues(3, "synthetic")).encode(), f"{split}.json")
    run = bench_hostile.load_in_child(archive)
    assert (run["outcome"], run["rows"]) == ("loaded", 9) and run["peak_rss_mb"] > 20
