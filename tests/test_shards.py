"""Jobs split over hosts: file shards (each opens only its own files), record shards, and --shard auto from
Kubernetes indexed Jobs, Slurm arrays and AWS Batch array jobs."""

from __future__ import annotations

import builtins
import gzip
import json
import os
import random
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import FAKE_COMMAND, REPO, read_jsonl

from dialogsum_batch.cli import main
from dialogsum_batch.config import ShardSettings
from dialogsum_batch.errors import ShardError
from dialogsum_batch.shards import DETECTORS, assign, describe, file_size, from_scheduler, plan_files

SCHEDULER_VARS = (
    *DETECTORS,
    "DIALOGSUM_SHARD_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_ARRAY_TASK_STEP",
    "SLURM_ARRAY_TASK_COUNT",
    "AWS_BATCH_JOB_ARRAY_SIZE",
)


@pytest.fixture(autouse=True)
def no_scheduler(monkeypatch):
    """Tests run outside any scheduler array, whatever the machine running them is."""
    for name in SCHEDULER_VARS:
        monkeypatch.delenv(name, raising=False)


def run(args, stdin=None, env=None):
    return CliRunner().invoke(main, args, input=stdin, env=env, catch_exceptions=False)


def record(name: str, line: int) -> dict:
    return {"id": f"{name}-{line}", "dialogue": f"A: chat {line} of {name}\nB: ok"}


def uneven_files(folder: Path, count: int = 23, seed: int = 7, gz_every: int = 5) -> dict[Path, list[str]]:
    """``count`` input files of 1 to 40 records (every ``gz_every``-th gzipped), and the ids each holds."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    files = {}
    for number in range(count):
        name = f"chats-{number:02d}"
        rows = [record(name, line) for line in range(rng.choice([1, 2, 3, 5, 8, 13, 21, 40]))]
        text = "".join(json.dumps(row) + "\n" for row in rows).encode()
        path = folder / (f"{name}.jsonl.gz" if number % gz_every == 0 else f"{name}.jsonl")
        path.write_bytes(gzip.compress(text, mtime=0) if path.suffix == ".gz" else text)
        files[path] = [row["id"] for row in rows]
    return files


def own_files(files: dict[Path, list[str]], index: int, count: int) -> list[Path]:
    """The files shard ``index`` of ``count`` should read, from the library's plan."""
    plan = plan_files([str(p) for p in files], ShardSettings(index, count, "file"))
    return [Path(p) for p in plan.paths]


# ---------------------------------------------------------------------------- file shards through the command


def test_file_shards_yield_every_record_exactly_once(fake_backend, tmp_path):
    files = uneven_files(tmp_path / "in")
    glob = str(tmp_path / "in" / "chats-*")
    seen: list[str] = []
    for index in range(1, 5):
        result = run(["-m", "x", glob, "--shard", f"{index}/4"])
        assert result.exit_code == 0, result.stderr
        assert f"shard {index}/4 from --shard {index}/4, by file:" in result.stderr
        ids = [r["id"] for r in read_jsonl(result.stdout)]
        assert ids
        assert sorted(ids) == sorted(i for p in own_files(files, index, 4) for i in files[p])
        seen.extend(ids)
    everything = [i for ids in files.values() for i in ids]
    assert len(seen) == len(everything) and sorted(seen) == sorted(everything)


def test_a_file_shard_never_opens_other_shards_files(fake_backend, tmp_path, monkeypatch):
    """Other shards' files are overwritten with garbage of the same size (so the plan is unchanged): a shard
    that read one would meet a bad record and fail. Every file opened is recorded as well (permissions would
    prove nothing when the tests run as root)."""
    files = uneven_files(tmp_path / "in")
    mine = own_files(files, 2, 4)
    for path in files:
        if path not in mine:
            path.write_bytes(b"x" * (path.stat().st_size - 1) + b"\n")
    opened: list[Path] = []
    real_open = builtins.open

    def spy(file, *args, **kwargs):
        if isinstance(file, (str, Path)) and Path(file).parent == tmp_path / "in":
            opened.append(Path(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    glob = str(tmp_path / "in" / "*.jsonl*")
    result = run(["-m", "x", glob, "--shard", "2/4", "--on-error", "fail"])
    assert result.exit_code == 0, result.stderr
    assert sorted(r["id"] for r in read_jsonl(result.stdout)) == sorted(i for p in mine for i in files[p])
    assert mine and set(opened) == set(mine)
    opened.clear()  # the control: the same shard by record reads every file, meets the garbage and fails
    assert run(["-m", "x", glob, "--shard", "2/4", "--shard-by", "record"]).exit_code == 1
    assert set(opened) - set(mine)


def test_the_plan_ignores_the_order_files_are_given_in(fake_backend, tmp_path):
    files = uneven_files(tmp_path / "in")
    paths = [str(p) for p in files]
    outputs = []
    for order in (paths, paths[::-1], random.Random(3).sample(paths, len(paths))):
        result = run(["-m", "x", *order, "--shard", "3/5"])
        plan_line = next(line for line in result.stderr.splitlines() if "by file" in line)
        outputs.append((sorted(r["id"] for r in read_jsonl(result.stdout)), plan_line.split("(plan ")[1]))
    assert outputs[0] == outputs[1] == outputs[2]


def test_a_shard_resumes_its_own_files(fake_backend, tmp_path):
    files = uneven_files(tmp_path / "in")
    glob = str(tmp_path / "in" / "*")
    out = tmp_path / "part-2.jsonl"
    full = run(["-m", "x", glob, "--shard", "2/3", "-o", str(out)])
    assert full.exit_code == 0
    rows = out.read_text().splitlines(keepends=True)
    out.write_text("".join(rows[: len(rows) // 2]))  # a run killed halfway
    again = run(["-m", "x", glob, "--shard", "2/3", "-o", str(out), "--resume"])
    assert again.exit_code == 0 and f"{len(rows) // 2} resumed" in again.stderr
    ids = [r["id"] for r in read_jsonl(out.read_text())]
    assert len(ids) == len(set(ids)) == len(rows)
    assert sorted(ids) == sorted(i for p in own_files(files, 2, 3) for i in files[p])


def test_more_shards_than_files_by_file_leaves_some_idle(fake_backend, tmp_path):
    files = uneven_files(tmp_path / "in", count=2)
    results = [run(["-m", "x", *map(str, files), "--shard", f"{i}/3", "--shard-by", "file"]) for i in (1, 2, 3)]
    assert [r.exit_code for r in results] == [0, 0, 0]
    counts = sorted(len(read_jsonl(r.stdout)) for r in results)
    assert counts[0] == 0 and sum(counts) == sum(len(ids) for ids in files.values())


# ---------------------------------------------------------------------------- record shards and the auto rule


@pytest.mark.parametrize("by", ["auto", "record"])
def test_record_shards_when_files_are_fewer_than_shards_or_asked(fake_backend, tmp_path, by):
    files = uneven_files(tmp_path / "in", count=5 if by == "record" else 2)
    seen = []
    for index in (1, 2, 3):
        result = run(["-m", "x", *map(str, files), "--shard", f"{index}/3", "--shard-by", by])
        assert result.exit_code == 0 and f"shard {index}/3 from --shard {index}/3, by record" in result.stderr
        seen.extend(r["id"] for r in read_jsonl(result.stdout))
    assert sorted(seen) == sorted(i for ids in files.values() for i in ids)


def test_stdin_is_sharded_by_record(fake_backend):
    stdin = "".join(json.dumps(record("s", i)) + "\n" for i in range(30))
    seen = []
    for index in (1, 2):
        result = run(["-m", "x", "--shard", f"{index}/2"], stdin=stdin)
        assert "by record: reads stdin whole" in result.stderr
        seen.extend(r["id"] for r in read_jsonl(result.stdout))
    assert sorted(seen) == sorted(f"s-{i}" for i in range(30))


def test_auto_rule_and_uneven_warning(tmp_path):
    paths = [str(tmp_path / f"{n}.jsonl") for n in range(4)]
    sizes = {paths[0]: 1000, paths[1]: 10, paths[2]: 10, paths[3]: 10}
    assert plan_files(paths, ShardSettings(1, 4), sizes.get).by == "file"
    assert plan_files(paths, ShardSettings(1, 5), sizes.get).by == "record"
    assert plan_files([*paths, "-"], ShardSettings(1, 2), sizes.get).by == "record"
    plan = plan_files(paths, ShardSettings(1, 4), sizes.get)
    lines = describe(plan, ShardSettings(1, 4))
    assert plan.paths == (paths[0],) and lines[-1][0] == "warning" and "uneven" in lines[-1][1]


# ---------------------------------------------------------------------------- the packing


def test_assignment_is_balanced_complete_and_order_free():
    rng = random.Random(11)
    sized = [(f"f{n:03d}", rng.randint(0, 10_000)) for n in range(200)]
    owners = dict(zip(sized, assign(sized, 7)))
    for seed in range(5):
        shuffled = random.Random(seed).sample(sized, len(sized))
        assert dict(zip(shuffled, assign(shuffled, 7))) == owners
    loads = [sum(size for (_, size), shard in owners.items() if shard == s) for s in range(1, 8)]
    assert set(owners.values()) == set(range(1, 8))
    assert max(loads) - min(loads) <= max(size for _, size in sized)  # greedy largest-first's bound


def test_equal_sizes_go_by_path_and_empty_files_spread():
    sized = [("b", 5), ("a", 5), ("c", 0), ("d", 0), ("e", 0)]
    owners = dict(zip((p for p, _ in sized), assign(sized, 2)))
    assert owners["a"] == 1 and owners["b"] == 2
    assert sorted(owners[p] for p in "cde").count(1) in (1, 2)


def test_unreadable_files_count_as_empty(tmp_path):
    assert file_size(str(tmp_path / "missing.jsonl")) == 0


# ---------------------------------------------------------------------------- schedulers


def shard(env: dict, count: int | None = None) -> tuple[int, int]:
    found = from_scheduler(env, count)
    return found.index, found.count


def slurm(task: int, first: int, last: int, step: int = 1, **extra) -> dict:
    count = (last - first) // step + 1
    env = {
        "SLURM_ARRAY_TASK_ID": str(task),
        "SLURM_ARRAY_TASK_MIN": str(first),
        "SLURM_ARRAY_TASK_MAX": str(last),
        "SLURM_ARRAY_TASK_STEP": str(step),
        "SLURM_ARRAY_TASK_COUNT": str(count),
    }
    return {**env, **{k: str(v) for k, v in extra.items()}}


def test_kubernetes_indexed_job():
    assert shard({"JOB_COMPLETION_INDEX": "0"}, 8) == (1, 8)
    assert shard({"JOB_COMPLETION_INDEX": "7", "DIALOGSUM_SHARD_COUNT": "8"}) == (8, 8)
    assert from_scheduler({"JOB_COMPLETION_INDEX": "2"}, 4).origin == "JOB_COMPLETION_INDEX=2 (--shard-count=4)"
    with pytest.raises(ShardError, match="--shard-count or DIALOGSUM_SHARD_COUNT"):
        from_scheduler({"JOB_COMPLETION_INDEX": "0"})
    with pytest.raises(ShardError, match="shard 9 of 8"):
        from_scheduler({"JOB_COMPLETION_INDEX": "8"}, 8)


def test_slurm_arrays_need_not_start_at_zero_or_one():
    assert shard(slurm(0, 0, 7)) == (1, 8)
    assert shard(slurm(1, 1, 8)) == (1, 8) and shard(slurm(8, 1, 8)) == (8, 8)
    assert shard(slurm(5, 3, 10)) == (3, 8)
    assert shard(slurm(8, 0, 12, step=4)) == (3, 4)  # --array=0-15:4 runs 0, 4, 8, 12
    assert from_scheduler(slurm(5, 3, 10)).origin == "SLURM_ARRAY_TASK_ID=5 (min 3, step 1, count 8)"
    older = slurm(6, 2, 9)
    del older["SLURM_ARRAY_TASK_COUNT"]  # an older Slurm: N from MIN, MAX and STEP
    assert shard(older) == (5, 8)
    assert shard(slurm(5, 3, 10), count=8) == (3, 8)


@pytest.mark.parametrize(
    "env, count, message",
    [
        (slurm(5, 3, 10), 4, "--shard-count=4 but SLURM_ARRAY_TASK_ID=5"),
        (slurm(6, 0, 12, step=4), None, "is not a task of the array 0-12:4"),
        (slurm(3, 1, 7, SLURM_ARRAY_TASK_COUNT=3), None, "not 3 evenly spaced tasks"),  # --array=1,3,7
        (slurm(4, 0, 12, SLURM_ARRAY_TASK_COUNT=4), None, "not 4 evenly spaced tasks"),  # --array=0,4,8,12
        ({"SLURM_ARRAY_TASK_ID": "3"}, None, "SLURM_ARRAY_TASK_MIN is not set"),
        ({**slurm(3, 1, 7), "SLURM_ARRAY_TASK_ID": "x3"}, None, "is not a whole number"),
    ],
)
def test_slurm_values_that_disagree(env, count, message):
    with pytest.raises(ShardError, match=message.replace("(", r"\(")):
        from_scheduler(env, count)


def test_aws_batch_array_job():
    aws = {"AWS_BATCH_JOB_ARRAY_INDEX": "1", "AWS_BATCH_JOB_ARRAY_SIZE": "5"}
    assert shard({"AWS_BATCH_JOB_ARRAY_INDEX": "0", "AWS_BATCH_JOB_ARRAY_SIZE": "10"}) == (1, 10)
    assert shard({"AWS_BATCH_JOB_ARRAY_INDEX": "9", "AWS_BATCH_JOB_ARRAY_SIZE": "10"}) == (10, 10)
    assert shard({"AWS_BATCH_JOB_ARRAY_INDEX": "1"}, 3) == (2, 3)
    with pytest.raises(ShardError, match="gives shard 11 of 10"):
        from_scheduler({"AWS_BATCH_JOB_ARRAY_INDEX": "10", "AWS_BATCH_JOB_ARRAY_SIZE": "10"})
    with pytest.raises(ShardError, match="AWS_BATCH_JOB_ARRAY_SIZE is not set"):
        from_scheduler({"AWS_BATCH_JOB_ARRAY_INDEX": "1"})
    with pytest.raises(ShardError, match="DIALOGSUM_SHARD_COUNT=4 but"):
        from_scheduler({**aws, "DIALOGSUM_SHARD_COUNT": "4"})


def test_no_scheduler_or_several():
    with pytest.raises(ShardError) as caught:
        from_scheduler({"SLURM_JOB_ID": "12", "PATH": "/bin"})
    assert all(name in str(caught.value) for name in DETECTORS)
    with pytest.raises(ShardError, match="several scheduler arrays"):
        from_scheduler({**slurm(1, 1, 2), "AWS_BATCH_JOB_ARRAY_INDEX": "0", "AWS_BATCH_JOB_ARRAY_SIZE": "2"})
    with pytest.raises(ShardError, match="below 1"):
        from_scheduler({"JOB_COMPLETION_INDEX": "0", "DIALOGSUM_SHARD_COUNT": "0"})


# ---------------------------------------------------------------------------- --shard auto through the command


def test_shard_auto_from_slurm_logs_why_and_matches_the_explicit_shard(fake_backend, tmp_path):
    uneven_files(tmp_path / "in")
    glob = str(tmp_path / "in" / "*")
    auto = run(["-m", "x", glob, "--shard", "auto"], env=slurm(5, 3, 10))
    explicit = run(["-m", "x", glob, "--shard", "3/8"])
    assert auto.exit_code == 0
    assert "shard 3/8 from SLURM_ARRAY_TASK_ID=5 (min 3, step 1, count 8), by file:" in auto.stderr
    assert auto.stdout == explicit.stdout != ""


def test_shard_auto_from_kubernetes_takes_the_count_from_our_variable(fake_backend, tmp_path):
    files = uneven_files(tmp_path / "in", count=3)
    env = {"JOB_COMPLETION_INDEX": "1", "DIALOGSUM_SHARD_COUNT": "3"}
    result = run(["-m", "x", *map(str, files), "--shard", "auto"], env=env)
    assert result.exit_code == 0 and "shard 2/3 from JOB_COMPLETION_INDEX=1 (DIALOGSUM_SHARD_COUNT=3)" in result.stderr
    missing = run(["-m", "x", *map(str, files), "--shard", "auto"], env={"JOB_COMPLETION_INDEX": "1"})
    assert missing.exit_code == 2 and "--shard-count" in missing.stderr


def test_shard_auto_without_a_scheduler_is_one_line_exit_2(fake_backend):
    result = run(["-m", "x", "--shard", "auto"], stdin="")
    assert result.exit_code == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "error: --shard auto: no scheduler array found" in lines[0]
    assert all(name in lines[0] for name in DETECTORS)


def test_shard_usage_errors_exit_2(fake_backend, tmp_path):
    source = tmp_path / "a.jsonl"
    source.write_text(json.dumps(record("a", 1)) + "\n")
    assert "--shard-by only applies" in run(["-m", "x", str(source), "--shard-by", "file"]).stderr
    assert run(["-m", "x", str(source), "--shard", "1/2", "--shard-count", "2"]).exit_code == 2
    assert run(["-m", "x", "--shard", "1/2", "--shard-by", "file"], stdin="").exit_code == 2
    assert run(["-m", "x", str(source), "--shard", "x/2"]).exit_code == 2


def test_help_says_which_sharding_applies_when():
    text = " ".join(run(["summarize", "--help"]).stdout.split())
    assert "--shard-by" in text and "at least N input files" in text and "Slurm" in text


# ---------------------------------------------------------------------------- the examples in docs/scale.md

DOCS = (REPO / "docs" / "scale.md").read_text(encoding="utf-8")


def fenced(kind: str, starting: str) -> str:
    return next(block for block in re.findall(rf"```{kind}\n(.*?)```", DOCS, re.S) if block.startswith(starting))


def test_the_kubernetes_manifest_runs_every_record_once(fake_backend, tmp_path):
    """Each index's pod command, as the manifest writes it (paths moved under tmp_path), through the command."""
    job = yaml.safe_load(fenced("yaml", "apiVersion: batch/v1"))
    spec = job["spec"]
    container = spec["template"]["spec"]["containers"][0]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert spec["completionMode"] == "Indexed" and int(env["DIALOGSUM_SHARD_COUNT"]) == spec["completions"]
    assert container["command"] == ["sh", "-c"] and container["args"][0].startswith("exec dialogsum-batch ")
    files = uneven_files(tmp_path / "data" / "chats" / "2026-12-05", gz_every=1)
    for index in range(spec["completions"]):
        script = container["args"][0].replace("$JOB_COMPLETION_INDEX", str(index))
        words = shlex.split(script.replace("/data/", f"{tmp_path}/data/"))[2:]
        result = run(words, env={**env, "JOB_COMPLETION_INDEX": str(index)})
        assert result.exit_code == 0, result.stderr
        assert (
            f"shard {index + 1}/8 from JOB_COMPLETION_INDEX={index} (DIALOGSUM_SHARD_COUNT=8), by file" in result.stderr
        )
    parts = sorted((tmp_path / "data" / "summaries" / "2026-12-05").glob("part-*.jsonl"))
    ids = [row["id"] for part in parts for row in read_jsonl(part.read_text())]
    assert len(parts) == 8 and sorted(ids) == sorted(i for found in files.values() for i in found)


def test_the_sbatch_script_runs_a_task_of_its_array(tmp_path):
    """The script itself under bash, as Slurm runs task 3 of --array=1-8, with a dialogsum-batch that uses the
    fake backend first on PATH."""
    script = fenced("bash", "#!/bin/bash\n#SBATCH")
    assert "--array=1-8" in script and "DIALOGSUM_SHARD_COUNT=8" in script
    files = uneven_files(tmp_path / "data" / "chats" / "2026-12-05", gz_every=1)
    (tmp_path / "summarize.sh").write_text(script.replace("/data/", f"{tmp_path}/data/"), encoding="utf-8")
    (tmp_path / "fake_command.py").write_text(FAKE_COMMAND.format(tests=str(REPO / "tests"), delay=0.0))
    shim = tmp_path / "bin" / "dialogsum-batch"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{tmp_path}/fake_command.py" "$@"\n')
    shim.chmod(0o755)
    slurm_env = {**slurm(3, 1, 8), "SLURM_CPUS_PER_TASK": "1", "DAY": "2026-12-05"}
    env = {**os.environ, **slurm_env, "PATH": f"{shim.parent}:{os.environ['PATH']}", "PYTHONPATH": str(REPO)}
    done = subprocess.run(["bash", "summarize.sh"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "shard 3/8 from SLURM_ARRAY_TASK_ID=3 (min 1, step 1, count 8), by file" in done.stderr
    part = tmp_path / "data" / "summaries" / "2026-12-05" / "part-3.jsonl"
    expected = [i for path in own_files(files, 3, 8) for i in files[path]]
    assert sorted(row["id"] for row in read_jsonl(part.read_text())) == sorted(expected)
