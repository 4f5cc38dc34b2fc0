"""Splitting one job over many hosts: which shard this run is, and which input files it reads.

Two ways to split (``--shard-by``):

* **file**: each shard opens and reads only its own whole files. The plan is a greedy largest-first packing
  of files by size onto the least-loaded shard; it depends only on the (path, size) pairs, never on the order
  the files were given, so every host given the same files computes the same plan without talking to the
  others, and a rerun with ``--resume`` reads the same files again.
* **record**: every shard reads everything and keeps the records whose id hashes to it (a single file, stdin).

``auto`` splits by file when there are at least as many input files as shards and no stdin (every shard then
gets a file), else by record.

The shard number comes from ``--shard I/N`` or, with ``--shard auto``, from a scheduler's array variables:
Kubernetes indexed Jobs, Slurm job arrays, AWS Batch array jobs (``from_scheduler``). Everything here is a
pure function of its arguments (an environment mapping, a list of sizes), so tests need no scheduler.
"""

from __future__ import annotations

import hashlib
import heapq
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .config import ShardSettings
from .errors import ShardError

STDIN = "-"
COUNT_ENV = "DIALOGSUM_SHARD_COUNT"  # N for schedulers that do not say it (Kubernetes indexed Jobs)
K8S_INDEX = "JOB_COMPLETION_INDEX"
SLURM_ID = "SLURM_ARRAY_TASK_ID"
AWS_INDEX = "AWS_BATCH_JOB_ARRAY_INDEX"
UNEVEN = 1.5  # a file plan whose fullest shard holds this many times the mean bytes gets a warning


# ---------------------------------------------------------------------------- which shard


def from_scheduler(env: Mapping[str, str], count: int | None = None) -> ShardSettings:
    """This run's shard from the scheduler array it runs in; ``count`` is ``--shard-count`` (else
    DIALOGSUM_SHARD_COUNT in ``env``), needed where the scheduler does not say N and checked where it does.

    Raises ShardError (exit 2) when no array variable is set, when several schedulers' are, or when the
    values disagree.
    """
    found = [name for name in DETECTORS if env.get(name, "").strip()]
    if not found:
        raise ShardError(f"--shard auto: no scheduler array found (looked for {', '.join(DETECTORS)}); use --shard I/N")
    if len(found) > 1:
        raise ShardError(f"--shard auto: several scheduler arrays found ({', '.join(found)}); use --shard I/N")
    expected, source = given_count(env, count)
    shard = DETECTORS[found[0]](env, expected, source)
    if expected is not None and expected != shard.count:
        raise ShardError(f"--shard auto: {source}={expected} but {shard.origin} says {shard.count} shards")
    return shard


def given_count(env: Mapping[str, str], count: int | None) -> tuple[int | None, str]:
    """N as the user gave it, and where from."""
    if count is not None:
        return count, "--shard-count"
    return whole(env, COUNT_ENV, least=1), COUNT_ENV


def kubernetes(env: Mapping[str, str], count: int | None, source: str) -> ShardSettings:
    """A Kubernetes indexed Job: JOB_COMPLETION_INDEX is 0-based; Kubernetes exposes no completion count."""
    index = required(env, K8S_INDEX, least=0)
    if count is None:
        raise ShardError(
            f"--shard auto: {K8S_INDEX}={index} but no shard count: Kubernetes does not expose "
            f"spec.completions; set --shard-count or {COUNT_ENV}"
        )
    return checked(index + 1, count, f"{K8S_INDEX}={index} ({source}={count})")


def slurm(env: Mapping[str, str], count: int | None, source: str) -> ShardSettings:
    """A Slurm job array; task ids are whatever ``--array`` asked for (``1-8``, ``0-15:4``), evenly spaced.

    Slurm sets MIN and MAX to the lowest and highest id, COUNT to the number of ids and STEP to the number
    after ``:`` in ``--array`` (1 for a list), so a list (``1,3,7``) is refused unless it is a plain range;
    the check uses only values every task shares, so all tasks of one array are refused alike. Without
    SLURM_ARRAY_TASK_COUNT (older Slurm), N follows from MIN, MAX and STEP.
    """
    task = required(env, SLURM_ID, least=0)
    first = required(env, "SLURM_ARRAY_TASK_MIN", least=0)
    step = whole(env, "SLURM_ARRAY_TASK_STEP", least=1) or 1
    last = whole(env, "SLURM_ARRAY_TASK_MAX", least=first)
    tasks = whole(env, "SLURM_ARRAY_TASK_COUNT", least=1)
    if tasks is None:
        tasks = (last - first) // step + 1 if last is not None else count
    if tasks is None:
        raise ShardError("--shard auto: SLURM_ARRAY_TASK_COUNT and SLURM_ARRAY_TASK_MAX are not set; use --shard I/N")
    if last is None:
        last = first + step * (tasks - 1)
    origin = f"{SLURM_ID}={task} (min {first}, step {step}, count {tasks})"
    if last != first + step * (tasks - 1):
        raise ShardError(
            f"--shard auto: the Slurm array {first}-{last} is not {tasks} evenly spaced tasks (step {step}); "
            f"use --shard I/N"
        )
    if (task - first) % step or not first <= task <= last:
        raise ShardError(f"--shard auto: {origin} is not a task of the array {first}-{last}:{step}")
    return checked((task - first) // step + 1, tasks, origin)


def aws_batch(env: Mapping[str, str], count: int | None, source: str) -> ShardSettings:
    """An AWS Batch array job: AWS_BATCH_JOB_ARRAY_INDEX is 0-based, AWS_BATCH_JOB_ARRAY_SIZE the size."""
    index = required(env, AWS_INDEX, least=0)
    size = whole(env, "AWS_BATCH_JOB_ARRAY_SIZE", least=1) or count
    if size is None:
        raise ShardError(f"--shard auto: {AWS_INDEX}={index} but AWS_BATCH_JOB_ARRAY_SIZE is not set")
    return checked(index + 1, size, f"{AWS_INDEX}={index} (size {size})")


DETECTORS: dict[str, Callable[[Mapping[str, str], int | None, str], ShardSettings]] = {
    K8S_INDEX: kubernetes,
    SLURM_ID: slurm,
    AWS_INDEX: aws_batch,
}


def whole(env: Mapping[str, str], name: str, least: int) -> int | None:
    """An integer variable of at least ``least``, or None when it is unset or empty."""
    text = env.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ShardError(f"--shard auto: {name}={text!r} is not a whole number") from None
    if value < least:
        raise ShardError(f"--shard auto: {name}={value} is below {least}")
    return value


def required(env: Mapping[str, str], name: str, least: int) -> int:
    value = whole(env, name, least)
    if value is None:
        raise ShardError(f"--shard auto: {name} is not set; use --shard I/N")
    return value


def checked(index: int, count: int, origin: str) -> ShardSettings:
    if not 1 <= index <= count:
        raise ShardError(f"--shard auto: {origin} gives shard {index} of {count}")
    return ShardSettings(index, count, origin=origin)


# ---------------------------------------------------------------------------- which files


@dataclass(frozen=True)
class FilePlan:
    """What one shard reads: its files (in the order given) or, by record, every file and a hash share."""

    by: str  # file | record
    paths: tuple[str, ...]  # the files this shard opens
    record_shard: tuple[int, int] | None  # by record: keep ids hashing to (index, count); by file: None
    loads: tuple[int, ...] = ()  # by file: bytes per shard, 1..N
    files: tuple[int, ...] = ()  # by file: files per shard, 1..N
    digest: str = ""  # by file: names the plan, the same on every host given the same files and sizes


def sharding(paths: Sequence[str], shard: ShardSettings) -> str:
    """``file`` or ``record`` for these inputs: ``auto`` is file when every shard can get a file."""
    if shard.by != "auto":
        return shard.by
    return "file" if STDIN not in paths and len(paths) >= shard.count else "record"


def plan_files(paths: Sequence[str], shard: ShardSettings, size: Callable[[str], int] | None = None) -> FilePlan:
    """This shard's share of ``paths`` (expanded already); ``size`` is a file's size in bytes (``file_size``)."""
    if sharding(paths, shard) == "record":
        return FilePlan("record", tuple(paths), (shard.index, shard.count))
    size = size or file_size
    sized = [(path, size(path)) for path in paths]
    owners = assign(sized, shard.count)
    loads, files = [0] * shard.count, [0] * shard.count
    for (_, nbytes), owner in zip(sized, owners):
        loads[owner - 1] += nbytes
        files[owner - 1] += 1
    mine = tuple(path for path, owner in zip(paths, owners) if owner == shard.index)
    return FilePlan("file", mine, None, tuple(loads), tuple(files), plan_digest(sized, shard.count))


def assign(sized: Sequence[tuple[str, int]], count: int) -> list[int]:
    """The shard (1..count) of each (path, size): largest file first onto the shard with the fewest bytes
    (then the fewest files, then the lowest number); files of equal size go by path. Any order of the same
    pairs gives each pair the same shard."""
    order = sorted(range(len(sized)), key=lambda k: (-sized[k][1], sized[k][0]))
    heap = [(0, 0, shard) for shard in range(1, count + 1)]
    owners = [0] * len(sized)
    for k in order:
        load, files, shard = heapq.heappop(heap)
        owners[k] = shard
        heapq.heappush(heap, (load + sized[k][1], files + 1, shard))
    return owners


def file_size(path: str) -> int:
    """Bytes on disk (compressed for .gz); 0 for a file that cannot be read, which one shard then reports."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def plan_digest(sized: Sequence[tuple[str, int]], count: int) -> str:
    """A short name for the plan: shards whose logs show the same digest split the same files the same way."""
    text = "\n".join(f"{size} {path}" for path, size in sorted(sized)) + f"\n{count}"
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=4).hexdigest()


def describe(plan: FilePlan, shard: ShardSettings) -> list[tuple[str, str]]:
    """The log lines (level, message) saying which shard this is, why, and what it reads."""
    head = f"shard {shard.index}/{shard.count} from {shard.origin}"
    if plan.by == "record":
        count = len(plan.paths)
        inputs = "stdin" if plan.paths == (STDIN,) else f"{count} input{'s' * (count != 1)}"
        return [("info", f"{head}, by record: reads {inputs} whole, keeps the ids that hash to {shard.index}")]
    total, mine = sum(plan.loads), plan.loads[shard.index - 1]
    lines = [
        (
            "info",
            f"{head}, by file: {len(plan.paths)} of {sum(plan.files)} files, {mine:,} of {total:,} bytes "
            f"(plan {plan.digest})",
        )
    ]
    mean = total / shard.count
    if mean and max(plan.loads) > UNEVEN * mean:
        lines.append(
            (
                "warning",
                f"file shards are uneven: the fullest holds {max(plan.loads) / mean:.1f}x the mean bytes "
                f"(--shard-by record evens out records, but every shard then reads every file)",
            )
        )
    return lines
