"""Past one process, on CPU with two gloo processes: dialogsum-batch under torchrun / accelerate launch writes
what one process writes, and ``invoke finetune --num-processes 2`` trains one DDP run whose folder serves.

The pure pieces (dealing, merging, counting, the launch command) are tested in-process; the launches share
module fixtures. About two minutes on 2 CPU cores, most of it process start-up.
"""

from __future__ import annotations

import json
import pickle
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REPO, TORCHRUN, launch_env, read_jsonl, write_jsonl
from invoke import Context, MockContext
from invoke.exceptions import Exit

from dialogsum_batch.cli import main as cli_main
from dialogsum_batch.config import ModelSettings
from dialogsum_batch.errors import InputError
from dialogsum_batch.fixtures.synthetic import generate
from dialogsum_batch.inference.engine import EngineCounts, Outcome
from dialogsum_batch.inference.job import StopFlag
from dialogsum_batch.inference.outputs import OutputLock
from dialogsum_batch.inference.parallel import ShareDone, World, deal, detect_world, merge, rank_model
from dialogsum_batch.inference.records import BadRecord, Record
from dialogsum_batch.tasks.training import finetune as finetune_task
from dialogsum_batch.training import launch
from dialogsum_batch.training.launch import launch_command

BAD_LINES = {11: "{not json", 42: json.dumps({"id": "no-dialogue"})}  # line number -> bad line
COMMON = ["--sort-window", "8", "--max-batch-size", "4", "--threads", "1", "--quiet"]
SUMMARY = re.compile(r"\d+ summarized, \d+ errors")


# ---------------------------------------------------------------------- the pure pieces


def test_world_comes_from_the_launcher_environment():
    assert detect_world({}) == World()
    assert detect_world({"WORLD_SIZE": "1", "RANK": "0"}).size == 1
    world = detect_world({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"})
    assert world == World(rank=3, size=4, local_rank=1, local_size=2) and not world.is_main


def test_each_rank_gets_its_own_gpu_or_a_share_of_the_cores():
    world = World(rank=1, size=2, local_rank=1, local_size=2)
    assert rank_model(ModelSettings(device="auto"), world, cuda=True).device == "cuda:1"
    assert rank_model(ModelSettings(device="cuda"), world, cuda=True).device == "cuda:1"
    assert rank_model(ModelSettings(device="cuda:0"), world, cuda=True).device == "cuda:0"  # asked for
    assert rank_model(ModelSettings(), world, cuda=False, environ={"OMP_NUM_THREADS": "3"}).threads == 3
    assert rank_model(ModelSettings(threads=5), world, cuda=False, environ={"OMP_NUM_THREADS": "3"}).threads == 5


def record(index: int, record_id: str | None = None) -> Record:
    return Record(index, record_id or f"r{index}", f"A: chat {index}", source="in.jsonl", line=index + 1)


def test_round_robin_shares_merge_back_in_input_order():
    window = [record(i) for i in range(11)]
    shares = deal(window, 3)
    assert [[r.index for r in share] for share in shares] == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    done = [ShareDone([Outcome(j, None, f"summary of {item.id}") for j, item in enumerate(share)]) for share in shares]
    merged = merge(done, window)
    assert [o.item for o in merged] == window  # each outcome finds its record again, by position alone
    assert [o.position for o in merged] == list(range(11))
    assert [o.summary for o in merged] == [f"summary of {r.id}" for r in window]


def test_outcomes_an_interrupted_rank_did_not_finish_stay_gaps():
    bad = BadRecord(2, InputError("in.jsonl", 3, "invalid JSON"))
    window = [record(0, "x"), record(1, "x"), bad, record(3)]  # repeated ids need no matching: positions place
    oom = InputError("in.jsonl", 4, "out of memory even alone")
    done = [
        ShareDone([Outcome(1, None, error=bad.error)]),  # rank 0: items 0 and 2; item 0 unfinished
        ShareDone([Outcome(0, None, "second x"), Outcome(1, None, error=oom)], interrupted=signal.SIGTERM),
    ]
    merged = merge(done, window)
    assert [(o.position, o.item, o.summary, o.error) for o in merged] == [
        (1, window[1], "second x", None),
        (2, bad, None, bad.error),
        (3, window[3], None, oom),
    ]


def test_bad_records_cross_process_boundaries():
    error = InputError("in.jsonl", 7, "field 'dialogue' is missing", '{"id": 1}')
    copy = pickle.loads(pickle.dumps(BadRecord(6, error))).error
    assert (copy.source, copy.line, copy.reason, copy.raw, str(copy)) == (
        error.source,
        error.line,
        error.reason,
        error.raw,
        str(error),
    )


def test_summary_counts_come_from_every_rank():
    total = EngineCounts()
    for part in (EngineCounts(2, 0, 10, 12, 1.5), EngineCounts(3, 1, 20, 25, 2.5)):
        total.add(part, side_by_side=True)
    assert (total.batches, total.oom_splits, total.real_tokens, total.padded_tokens) == (5, 1, 30, 37)
    assert total.generate_seconds == 2.5  # side by side, not one after the other
    total.add(EngineCounts(generate_seconds=1.0))  # one after the other: the times add up
    assert total.generate_seconds == 3.5


def test_a_forwarded_second_signal_is_the_same_stop():
    patient = StopFlag(grace=60)
    patient.handle(signal.SIGINT, None)
    patient.handle(signal.SIGTERM, None)  # the launcher passing Ctrl-C on
    assert patient() and patient.signal == signal.SIGINT
    hasty = StopFlag()
    hasty.handle(signal.SIGINT, None)
    with pytest.raises(KeyboardInterrupt):
        hasty.handle(signal.SIGINT, None)


def test_launch_command_for_processes_or_a_config_file():
    cpu = launch_command("dialogsum_batch", ["finetune", "--preset", "smoke"], 2, None, cuda=False)
    assert cpu[1:3] == ["-m", "accelerate.commands.launch"] and "--cpu" not in cpu  # --cpu starts one process
    assert cpu[cpu.index("--num_processes") + 1] == "2" and "--multi_gpu" in cpu
    assert cpu[cpu.index("--main_process_port") + 1] == "0"  # a free port: runs side by side do not collide
    assert cpu[-5:] == ["-m", "dialogsum_batch", "finetune", "--preset", "smoke"]
    assert "--cpu" in launch_command("m", [], 1, None, cuda=False)
    assert "--cpu" not in launch_command("m", [], 1, None, cuda=True)
    fsdp = launch_command("m", ["--resume"], None, "fsdp.yaml", cuda=True)
    assert fsdp[3:] == ["--config_file", "fsdp.yaml", "-m", "m", "--resume"]  # the file decides the rest


def test_task_and_command_pass_their_options_through_accelerate_launch(monkeypatch):
    launched = []

    def run(command, **kwargs):
        launched.append(command)
        return subprocess.CompletedProcess(command, returncode=7 if "fail" in command else 0)

    monkeypatch.setattr(launch.subprocess, "run", run)
    options = ["--preset", "smoke", "--output-dir", "runs/x y", "--max-steps", "5", "--resume", "--set", "lr=1e-3"]
    finetune_task(
        MockContext(),
        preset="smoke",
        output_dir="runs/x y",
        max_steps="5",
        resume=True,
        set_=["lr=1e-3"],
        num_processes="2",
        accelerate_config="ddp.yaml",
    )
    result = CliRunner().invoke(
        cli_main, ["finetune", *options, "--num-processes", "2", "--accelerate-config", "ddp.yaml"]
    )
    assert result.exit_code == 0, result.stderr
    for command in launched:
        line = " ".join(command)
        assert "--config_file ddp.yaml --num_processes 2 -m dialogsum_batch finetune" in line
        assert command[-len(options) :] == options
    with pytest.raises(Exit) as caught:
        finetune_task(MockContext(), preset="smoke", num_processes="2", output_dir="fail")
    assert caught.value.code == 7
    assert CliRunner().invoke(cli_main, ["finetune", "--output-dir", "fail", "--num-processes", "2"]).exit_code == 7
    with pytest.raises(Exit):
        finetune_task(MockContext(), preset="smoke", num_processes="two")
    for wrong in ("two", "0"):  # a usage error, named, before anything starts
        refused = CliRunner().invoke(cli_main, ["finetune", "--num-processes", wrong])
        assert refused.exit_code == 2 and "--num-processes" in refused.output


# ---------------------------------------------------------------------- bulk inference on two processes


def torchrun(args: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, *TORCHRUN, "-m", "dialogsum_batch", *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, env=launch_env(), cwd=REPO, timeout=180)


def job_exit_code(result: subprocess.CompletedProcess) -> int:
    """The job's exit code under a launcher, which exits 1 for any failure: the code of the rank that
    exited first (its report's root cause). Every rank exits with the code the main process decided,
    unless the launcher stopped it (SIGTERM) once another had exited."""
    if result.returncode == 0:
        return 0
    codes = [int(code) for code in re.findall(r"exitcode\s*:\s*(-?\d+)", result.stderr)]
    root = result.stderr.split("Root Cause")[-1]
    first = int(re.search(r"exitcode\s*:\s*(-?\d+)", root).group(1))
    assert set(codes) <= {first, -signal.SIGTERM}, codes
    return first


@pytest.fixture(scope="module")
def chats(tmp_path_factory) -> Path:
    """60 synthetic chats with reference summaries, and two bad lines among them."""
    lines = [json.dumps(row) for row in generate(60, seed=31)]
    for number, bad in sorted(BAD_LINES.items()):
        lines.insert(number - 1, bad)
    path = tmp_path_factory.mktemp("chats") / "chats.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def skip_options(folder: Path) -> tuple[dict[str, Path], list[str]]:
    files = {"errors": folder / "errors.jsonl", "metrics": folder / "metrics.json"}
    return files, ["--on-error", "skip", "--errors-out", str(files["errors"]), "--metrics-out", str(files["metrics"])]


@pytest.fixture(scope="module")
def one_process(chats, tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    """The reference: the job in this process, stdin to a file."""
    folder = tmp_path_factory.mktemp("one")
    files, options = skip_options(folder)
    files["out"] = folder / "out.jsonl"
    result = CliRunner().invoke(
        cli_main, ["-m", str(tiny_model_dir), "-o", str(files["out"]), *options, *COMMON], input=chats.read_text()
    )
    assert result.exit_code == 3, result.output
    return files


@pytest.fixture(scope="module")
def two_processes(chats, tiny_model_dir, tmp_path_factory) -> tuple[dict[str, Path], subprocess.CompletedProcess]:
    """The same job under ``accelerate launch`` on two processes, stdin to stdout, stderr not quiet."""
    files, options = skip_options(tmp_path_factory.mktemp("two"))
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--main_process_port",
        "0",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "dialogsum_batch",
        "-m",
        str(tiny_model_dir),
        *options,
        *COMMON[:-1],
    ]
    result = subprocess.run(
        command, input=chats.read_text(), capture_output=True, text=True, env=launch_env(), cwd=REPO, timeout=180
    )
    return files, result


@pytest.mark.slow
def test_two_processes_write_what_one_writes(one_process, two_processes):
    files, result = two_processes
    assert job_exit_code(result) == 3, result.stderr[-3000:]  # partial
    assert result.stdout == one_process["out"].read_text()  # same summaries, same order, nothing else
    assert files["errors"].read_bytes() == one_process["errors"].read_bytes()
    assert len(read_jsonl(result.stdout)) == 60


def test_metrics_and_summary_count_every_rank_once(one_process, two_processes):
    files, result = two_processes
    one, two = (json.loads(path.read_text()) for path in (one_process["metrics"], files["metrics"]))
    for key in ("records", "errors", "truncated", "resumed", "generated_tokens", "rouge", "rouge_records", "exit_code"):
        assert two[key] == one[key], key
    assert (two["processes"], one["processes"], two["records"], two["errors"]) == (2, 1, 60, 2)
    assert len(SUMMARY.findall(result.stderr)) == 1  # the main process speaks for all
    skipped = re.findall(r"skipped <stdin>:(\d+):", result.stderr)
    assert skipped == [str(n) for n in sorted(BAD_LINES)]


@pytest.mark.slow
def test_fail_stops_both_ranks_at_the_first_bad_record_then_resume_finishes(
    chats, one_process, tiny_model_dir, tmp_path
):
    out = tmp_path / "out.jsonl"
    failed = torchrun([str(chats), "-m", str(tiny_model_dir), "-o", str(out), *COMMON])
    assert job_exit_code(failed) == 1, failed.stderr[-3000:]
    assert failed.stderr.count("chats.jsonl:11: invalid JSON") == 1
    expected = one_process["out"].read_text().splitlines(keepends=True)
    assert out.read_text() == "".join(expected[:10])  # every record before the bad line, nothing after
    with open(out, "a", encoding="utf-8") as stream:
        stream.write(expected[10][:25])  # a torn line, as a SIGKILL leaves
    files, options = skip_options(tmp_path)
    resumed = torchrun([str(chats), "-m", str(tiny_model_dir), "-o", str(out), "--resume", *options, *COMMON])
    assert job_exit_code(resumed) == 3, resumed.stderr[-3000:]
    assert out.read_bytes() == one_process["out"].read_bytes()
    errors = [(e["line"], e["reason"]) for e in read_jsonl(files["errors"].read_text())]
    assert errors == [(e["line"], e["reason"]) for e in read_jsonl(one_process["errors"].read_text())]
    metrics = json.loads(files["metrics"].read_text())
    assert (metrics["resumed"], metrics["records"], metrics["processes"]) == (10, 50, 2)


@pytest.mark.slow
def test_a_held_lock_stops_every_rank_with_75(chats, tiny_model_dir, tmp_path):
    out = tmp_path / "out.jsonl"
    with OutputLock(str(out) + ".lock"):
        result = torchrun([str(chats), "-m", str(tiny_model_dir), "-o", str(out), *COMMON])
    assert job_exit_code(result) == 75, result.stderr[-3000:]
    assert result.stderr.count("another run is writing the same output") == 1
    assert not out.exists()


# ---------------------------------------------------------------------- fine-tuning on two processes


@pytest.mark.slow
def test_finetune_on_two_processes_trains_one_run_that_serves(tmp_path, capfd):
    run_dir = tmp_path / "run"
    finetune_task(
        Context(),
        preset="smoke",
        output_dir=str(run_dir),
        num_processes="2",
        max_steps="4",
        set_=["synthetic_train=128", "synthetic_validation=16", "eval_steps=2", "save_steps=2", "logging_steps=2"],
    )
    printed = capfd.readouterr()
    assert printed.out.strip().splitlines()[-1] == str(run_dir)  # once, by the main process
    assert printed.err.count("training done") == 1  # one run, not two runs side by side
    assert "x 2 process(es) = 32" in (run_dir / "README.md").read_text()
    assert json.loads((run_dir / "trainer_state.json").read_text())["global_step"] == 4
    chats = write_jsonl(tmp_path / "chats.jsonl", list(generate(4, seed=5)))
    served = CliRunner().invoke(cli_main, [str(chats), "--model", str(run_dir), "--quiet", "--threads", "1"])
    assert served.exit_code == 0, served.output
    assert [row["id"] for row in read_jsonl(served.stdout)] == ["syn-000000", "syn-000001", "syn-000002", "syn-000003"]
