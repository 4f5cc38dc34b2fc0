"""Ray Data on a real local Ray (one per module): the job gives the local command's rows, ids and order,
survives a killed actor with every record exactly once, and a rerun completes an interrupted job;
SummarizeBatch inside a user's own pipeline matches the Python API."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import launch_env, read_jsonl, write_jsonl

from dialogsum_batch.errors import ConfigError
from dialogsum_batch.fixtures.synthetic import generate

HAVE_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed: pip install dialogsum-batch[ray]")
DECODE = ["--backend", "transformers", "--num-beams", "1", "--max-new-tokens", "12"]
CT2 = ["--backend", "ctranslate2", "--quantization", "float32"]  # given after DECODE: the later --backend wins


@dataclass(frozen=True)
class Cluster:
    address: str
    pids: Path  # each model actor writes a file named by its pid here (DIALOGSUM_RAY_PID_DIR)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray for the whole module: 3 logical CPUs, two for model actors and one left for read tasks."""
    import ray

    pids = tmp_path_factory.mktemp("actor-pids")
    env = {
        "RAY_AUTH_MODE": "disabled",  # the commands run under another HOME, away from a generated token
        "DIALOGSUM_RAY_PID_DIR": str(pids),
        "DIALOGSUM_CACHE": str(tmp_path_factory.mktemp("ct2-cache")),  # the actors' CTranslate2 conversions
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        **{k: v for k, v in launch_env().items() if k in ("PYTHONPATH", "OMP_NUM_THREADS")},
    }
    with pytest.MonkeyPatch.context() as patch:  # the workers inherit the environment Ray starts in
        for name, value in env.items():
            patch.setenv(name, value)
        ray.init(num_cpus=3, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
        try:
            yield Cluster(ray.get_runtime_context().gcs_address, pids)
        finally:
            ray.shutdown()


def chats(tmp_path: Path, files: int, per_file: int, bad_line: bool = False) -> list[Path]:
    """``files`` JSONL files of synthetic chats (id, dialogue, summary, topic), ids unique across files."""
    rows = [{**row, "topic": f"t{i % 3}"} for i, row in enumerate(generate(files * per_file, seed=7))]
    paths = []
    for number in range(files):
        path = write_jsonl(tmp_path / f"chats-{number}.jsonl", rows[number * per_file : (number + 1) * per_file])
        if bad_line and number == files - 1:
            with path.open("a", encoding="utf-8") as stream:
                stream.write('{"id": "broken", "dialogue": \n')
        paths.append(path)
    return paths


def whatsapp_export(tmp_path: Path) -> Path:
    """A WhatsApp export of two conversations (a silence over --gap between them)."""
    path = tmp_path / "whatsapp.txt"
    path.write_text(
        "[12/03/2024, 09:15:02] Anna: are we still on for lunch?\n"
        "[12/03/2024, 09:16:40] Ben: yes, 12:30 at the usual place\n"
        "[12/03/2024, 09:17:05] Anna: great, see you there\n"
        "[12/03/2024, 18:40:00] Ben: did you get the tickets?\n"
        "[12/03/2024, 18:42:13] Anna: yes, two for Friday\n",
        encoding="utf-8",
    )
    return path


def command(*args: str, module: str = "dialogsum_batch") -> list[str]:
    return [sys.executable, "-m", module, *map(str, args)]


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=launch_env(), capture_output=True, text=True, timeout=300)


def ray_job(cluster: Cluster, inputs: list[Path], output: Path, *extra: str) -> list[str]:
    return command(
        *inputs,
        "-o",
        output,
        "--address",
        cluster.address,
        "--workers",
        "2",
        *DECODE,
        *extra,
        module="dialogsum_batch.ray",
    )


def local_rows(tiny_model_dir: Path, inputs: list[Path], tmp_path: Path, *extra: str) -> list[dict]:
    output = tmp_path / "local.jsonl"
    done = run(command(*inputs, "-m", tiny_model_dir, "-o", output, *DECODE, *extra))
    assert done.returncode in (0, 3), done.stderr
    return read_jsonl(output.read_text(encoding="utf-8"))


def wait_for(condition, timeout: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


# ---------------------------------------------------------------------------- without a cluster


def test_a_missing_ray_says_how_to_install_it(monkeypatch):
    from dialogsum_batch import ray as ray_entry

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails as on an install without the extra
    with pytest.raises(ConfigError, match=r"pip install dialogsum-batch\[ray\]"):
        ray_entry.import_ray()


def test_every_batch_format_ray_hands_over_becomes_the_same_plain_rows():
    import numpy as np
    import pyarrow as pa

    from dialogsum_batch.ray import batch_rows

    table = pa.table({"id": ["a", "b"], "dialogue": ["A: hi", "B: yo"], "summary": ["s", None], "n": [[1, 2], [3]]})
    numpy_batch = {name: np.array(values, dtype=object) for name, values in table.to_pydict().items()}
    expected = [
        {"id": "a", "dialogue": "A: hi", "summary": "s", "n": [1, 2]},
        {"id": "b", "dialogue": "B: yo", "summary": None, "n": [3]},  # pandas' NaN for a missing value: None
    ]
    assert batch_rows(table) == batch_rows(table.to_pandas()) == batch_rows(numpy_batch) == expected
    assert batch_rows({"id": np.array([7])}) == [{"id": 7}] and type(batch_rows({"id": np.array([7])})[0]["id"]) is int


@needs_ray
def test_on_error_fail_is_refused_inside_ray(tiny_model_dir):
    from dialogsum_batch.ray import SummarizeBatch

    with pytest.raises(ConfigError, match="must not end the job"):
        SummarizeBatch(str(tiny_model_dir), on_error="fail")


def test_the_command_reads_files_not_stdin():
    from dialogsum_batch.cli.ray import ray_command

    result = CliRunner().invoke(ray_command, ["-", "-o", "out.jsonl"])
    assert result.exit_code == 2
    assert "not stdin" in result.output


@needs_ray
def test_a_missing_model_folder_fails_before_ray_starts(tmp_path):
    from dialogsum_batch.cli.ray import ray_command

    inputs = chats(tmp_path, files=1, per_file=2)
    result = CliRunner().invoke(ray_command, [*map(str, inputs), "-o", str(tmp_path / "out.jsonl"), "-m", "./nowhere"])
    assert result.exit_code == 1
    assert "model folder './nowhere' does not exist" in result.output


# ---------------------------------------------------------------------------- on a real Ray


@needs_ray
@pytest.mark.slow
@pytest.mark.parametrize("backend", [[], CT2], ids=["transformers", "ctranslate2"])
def test_the_ray_job_writes_what_the_local_command_writes(cluster, tiny_model_dir, tmp_path, backend):
    """Same summaries, ids, ROUGE, kept fields, order and bad-record handling as the local command, from
    files with a bad line, in Ray batches smaller than a file; with either backend."""
    inputs = chats(tmp_path, files=3, per_file=9, bad_line=True) + [whatsapp_export(tmp_path)]
    options = ["--on-error", "skip", "--keep-fields", "topic", *backend]
    expected = local_rows(tiny_model_dir, inputs, tmp_path, *options, "--errors-out", tmp_path / "local-bad.jsonl")
    output = tmp_path / "ray.jsonl"
    errors = tmp_path / "ray-bad.jsonl"
    done = run(
        ray_job(cluster, inputs, output, "-m", tiny_model_dir, "--batch-size", "4", *options, "--errors-out", errors)
    )
    assert done.returncode == 3, done.stderr  # partial: one bad record skipped, as locally
    assert read_jsonl(output.read_text(encoding="utf-8")) == expected
    assert len(expected) == 29 and [row["id"] for row in expected][:2] == ["syn-000000", "syn-000001"]
    assert expected[-1]["format"] == "whatsapp" and expected[-1]["turns"] == 2  # a chat's metadata travels too
    assert read_jsonl(errors.read_text(encoding="utf-8")) == read_jsonl(
        (tmp_path / "local-bad.jsonl").read_text(encoding="utf-8")
    )
    assert "29 summarized, 1 errors" in done.stderr


def test_a_missing_field_error_survives_the_trip_through_ray_rows():
    from dialogsum_batch.errors import MissingFieldError
    from dialogsum_batch.ray import BadRecord, job_item, job_row

    error = MissingFieldError("a.jsonl", 3, "txt", "--text-field", ("id", "dialogue"), '{"id": 1}')
    back = job_item(job_row(BadRecord(0, error))["item"]).error
    assert isinstance(back, MissingFieldError) and str(back) == str(error)
    assert (back.field, back.option, back.found) == ("txt", "--text-field", ("id", "dialogue"))


@needs_ray
@pytest.mark.slow
def test_a_field_no_record_has_ends_the_ray_job_as_it_ends_the_local_one(cluster, tiny_model_dir, tmp_path):
    inputs = chats(tmp_path, files=2, per_file=3)
    wrong = ["--text-field", "txt", "--on-error", "skip"]  # skip: a missing field ends the job only if it never matched
    local = run(command(*inputs, "-m", tiny_model_dir, "-o", tmp_path / "local.jsonl", *DECODE, *wrong))
    done = run(ray_job(cluster, inputs, tmp_path / "ray.jsonl", "-m", tiny_model_dir, *wrong))
    assert local.returncode == done.returncode == 1, done.stderr
    reason = "no record has field 'txt' (--text-field); fields found: "
    assert reason in local.stderr and reason in done.stderr
    counts = tmp_path / "counted.json"
    counted = run(ray_job(cluster, inputs[:1], tmp_path / "ok.jsonl", "-m", tiny_model_dir, "--metrics-out", counts))
    assert counted.returncode == 0, counted.stderr
    metrics = json.loads(counts.read_text())  # the actors' counts reach the metrics, their engines' too
    assert metrics["generated_tokens"] > 0 and 1 <= metrics["batches"] <= 3 and metrics["oom_splits"] == 0
    assert 0 < metrics["padding_efficiency"] <= 1 and metrics["generate_seconds"] > 0


@needs_ray
@pytest.mark.slow
def test_a_killed_actor_is_restarted_and_every_record_written_once(cluster, tiny_model_dir, tmp_path):
    inputs = chats(tmp_path, files=4, per_file=40)
    expected_ids = [row["id"] for path in inputs for row in read_jsonl(path.read_text(encoding="utf-8"))]
    output = tmp_path / "ray.jsonl"
    before = set(os.listdir(cluster.pids))
    job = subprocess.Popen(
        ray_job(cluster, inputs, output, "-m", tiny_model_dir, "--batch-size", "2"),
        env=launch_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: len(set(os.listdir(cluster.pids)) - before) >= 2, what="two model actors")
        wait_for(lambda: lines(output) >= 4, what="the first rows")
        assert job.poll() is None, "the job ended before an actor could be killed"
        victim = int(sorted(set(os.listdir(cluster.pids)) - before)[0])
        os.kill(victim, signal.SIGKILL)
        _, stderr = job.communicate(timeout=300)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == 0, stderr
    written = [row["id"] for row in read_jsonl(output.read_text(encoding="utf-8"))]
    assert written == expected_ids  # every record exactly once, in input order
    restarted = set(os.listdir(cluster.pids)) - before - {str(victim)}
    assert len(restarted) >= 2, f"no actor started after {victim} was killed: {restarted}"


@needs_ray
@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "crash"])
def test_a_rerun_completes_an_interrupted_job(cluster, tiny_model_dir, tmp_path, stop):
    inputs = chats(tmp_path, files=2, per_file=60)
    expected = local_rows(tiny_model_dir, inputs, tmp_path)
    output = tmp_path / "ray.jsonl"
    args = ray_job(cluster, inputs, output, "-m", tiny_model_dir, "--batch-size", "2", "--resume")
    job = subprocess.Popen(args, env=launch_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: lines(output) >= 6, what="the first rows")
        job.send_signal(stop)
        _, stderr = job.communicate(timeout=120)
    finally:
        if job.poll() is None:
            job.kill()
    assert job.returncode == (130 if stop == signal.SIGINT else -signal.SIGKILL), stderr
    first = lines(output)
    assert 6 <= first < len(expected), "the job was not stopped midway"
    rerun = run(args)
    assert rerun.returncode == 0, rerun.stderr
    assert read_jsonl(output.read_text(encoding="utf-8")) == expected  # no duplicates, nothing missing, in order
    assert f"resuming: {first} records already in" in rerun.stderr or first == 0


@needs_ray
@pytest.mark.slow
def test_summarize_batch_in_a_users_pipeline_matches_the_python_api(cluster, tiny_model_dir):
    import ray

    from dialogsum_batch import Summarizer
    from dialogsum_batch.ray import SummarizeBatch

    rows = [{**row, "topic": "t"} for row in generate(10, seed=3)]
    rows.insert(4, {"id": "empty", "dialogue": "   ", "topic": "t"})
    options = {"backend": "transformers", "num_beams": 1, "max_new_tokens": 12, "keep_fields": ["topic"]}
    expected = list(Summarizer(str(tiny_model_dir), on_error="skip", **options).summarize(rows))

    def summarized(on_error: str) -> list[dict]:
        ds = ray.data.from_items(rows).map_batches(
            SummarizeBatch,
            fn_constructor_kwargs={"model": str(tiny_model_dir), "on_error": on_error, **options},
            compute=ray.data.ActorPoolStrategy(size=1),
            batch_size=4,
        )
        return sorted(ds.take_all(), key=lambda row: [r["id"] for r in rows].index(row["id"]))

    with_errors = summarized("row")
    assert [row["id"] for row in with_errors] == [row["id"] for row in rows]
    bad = with_errors.pop(4)
    assert bad["error"] == "field 'dialogue' is empty" and bad["summary"] is None
    assert [(r["id"], r["summary"], r["reference"], r["topic"]) for r in with_errors] == [
        (r["id"], r["summary"], r["reference"], r["topic"]) for r in expected
    ]
    assert all(row["rouge"] == pytest.approx(want["rouge"]) for row, want in zip(with_errors, expected))
    assert all(row["error"] is None for row in with_errors)
    assert [row["id"] for row in summarized("skip")] == [row["id"] for row in expected]


def bench_script():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    import bench_ray

    return bench_ray


@needs_ray
@pytest.mark.slow
def test_the_ray_overhead_bench_runs_both_systems_on_the_same_rows(cluster, tiny_model_dir, tmp_path):
    script = bench_script()
    import common  # beside the script, importable once it is

    work = tmp_path / "work"
    shutil.copytree(tiny_model_dir, work / "perf-tiny")
    (work / "perf-tiny" / "bench_spec.json").write_text(json.dumps({**asdict(common.MODELS["tiny"]), "seed": 0}))
    report = script.main(
        ["--model", "tiny", "--backend", "transformers", "--records", "3,6", "--max-new-tokens", "4"]
        + ["--repeats", "1", "--cores", "1", "--batch-size", "2", "--address", cluster.address]
        + ["--work-dir", str(work), "--output-dir", str(tmp_path / "results"), "--source", "synthetic"]
    )
    assert [(run["system"], run["records"]) for run in report["runs"]] == [
        ("local", 3),
        ("ray 1x1", 3),
        ("local", 6),
        ("ray 1x1", 6),
    ]
    assert all(run["same_rows_as_local"] and run["process_seconds"] > 0 for run in report["runs"])
    assert set(report["fit"]) == {"local", "ray 1x1"}
    assert (report["records"], report["threads"], report["environment"]["threads"]) == ([3, 6], 1, 1)
    markdown = (tmp_path / "results" / "bench_ray.md").read_text()
    assert markdown.count("ray 1x1") == 3  # 2 sizes and the fit
    assert "threads 1; load average" in markdown.splitlines()[0]  # the shared machine header
    assert markdown.strip().splitlines()[-1].startswith("Reproduce: `python bench/bench_ray.py --model tiny")


def test_the_ray_overhead_bench_leaves_unset_options_to_the_command():
    from dialogsum_batch.config import default_of

    args = bench_script().parse_args(["--records", "8,16", "--cores", "2"])
    assert (args.records, args.threads, args.name) == ([8, 16], 2, "bench_ray")
    assert args.max_new_tokens == default_of("max_new_tokens") and args.backend is None
    local, ray = (
        bench_script().command(system, Path("m"), Path("in.jsonl"), Path("o"), Path("x"), args)
        for system in ("local", "ray 2x1")
    )
    assert local[:3] == ["-m", "dialogsum_batch", "summarize"] and "--threads" in local and "--backend" not in local
    assert ray[:3] == ["-m", "dialogsum_batch", "ray"] and "--threads" not in ray
    assert ray[ray.index("--workers") :][:4] == ["--workers", "2", "--cpus-per-worker", "1"]


def test_the_bench_task_runs_the_script_with_its_options():
    from invoke import MockContext, Result

    from dialogsum_batch.tasks.bench import bench_ray

    c = MockContext(run=Result(exited=0), repeat=True)
    bench_ray(c, model="tiny", records="8,16", repeats=1, address="head:6379", work_dir="w")
    (command,) = [call.args[0] for call in c.run.call_args_list]
    assert "bench/bench_ray.py --model tiny --records 8,16 --repeats 1 --address head:6379" in command
    assert "--work-dir w" in command
    assert "--backend" not in command and "--output-dir" not in command  # left to the script
