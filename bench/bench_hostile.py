"""Hostile inputs keep memory bounded: peak RSS of an archive bomb vs a normal corpus load.

Each load runs in a fresh ``python -c`` process (``load_corpus`` on one 7z archive) and its own peak
resident set size is that process's (VmHWM, read as it exits):

- **normal**: a SAMSum-sized corpus.7z (synthetic chats, 14,732 / 818 / 819 records, about 12 MB
  expanded), default caps;
- **bomb over the cap**: 600 MB of zeros in one member, past the 512 MiB default per-member cap:
  refused from the archive's listing;
- **bomb under the cap**: 300 MB of zeros, within the defaults: extracted in bounded steps to a
  temporary folder, then refused as a JSON Lines line over the record limit;
- **bomb under the cap, py7zr's own steps** (for information, not judged): the same with the
  decompression step left at py7zr's default (up to 128 MB).

Each bomb's peak must stay within ``--limit`` (1.5x) of the normal load's. Archives are built once
into the work folder (bombs from sparse files, so building them costs no memory).

An endless input line gets the same treatment (``endless_line_rss``): ``dialogsum-batch`` on the tiny
model, ``--threads 1``, 40 records through a pipe, vs the same with a 300 MB line in the middle.

    python bench/bench_hostile.py                 # writes bench/results/hostile-{archive,line}.{json,md}
    python bench/bench_hostile.py --only line --limit 1.5
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from common import child_env, environment, markdown_table, model_dir, publish

DEFAULT_CAPS = {"DIALOGSUM_MAX_EXTRACT_BYTES": None, "DIALOGSUM_MAX_MEMBER_BYTES": None}  # the defaults are measured
LIMIT = 1.5  # a bomb's peak RSS may be at most this multiple of a normal corpus load's
SAMSUM_SPLITS = {"train": 14_732, "val": 818, "test": 819}

# The child loads one archive and prints what happened as one JSON line. argv[2] == "py7zr-steps"
# puts back py7zr's own decompression step size, to show what the step bound saves.
CHILD = """
import json, sys
from dialogsum_batch import corpora
from dialogsum_batch.errors import DataError
if sys.argv[2] == "py7zr-steps":
    corpora.EXTRACT_STEP_BYTES = 1 << 40
try:
    corpus = corpora.load_corpus(sys.argv[1], log=lambda line: None)
    print(json.dumps({"outcome": "loaded", "rows": sum(split.num_rows for split in corpus.values())}))
except DataError as error:
    print(json.dumps({"outcome": "DataError", "message": str(error)}))
"""


def normal_archive(folder: Path) -> Path:
    """A SAMSum-shaped corpus.7z of synthetic chats (JSON lists named train / val / test)."""
    import py7zr

    from dialogsum_batch.fixtures.synthetic import generate

    path = folder / "normal-corpus.7z"
    if not path.exists():
        with py7zr.SevenZipFile(path, mode="w") as archive:
            for seed, (split, n) in enumerate(SAMSUM_SPLITS.items()):
                archive.writestr(json.dumps(list(generate(n, seed=seed))).encode(), f"{split}.json")
    return path


def bomb_archive(folder: Path, megabytes: int) -> Path:
    """A corpus.7z whose train.json is ``megabytes`` MB of zeros, compressed from a sparse file."""
    import py7zr

    path = folder / f"bomb-{megabytes}mb.7z"
    if not path.exists():
        zeros = folder / "zeros.tmp"
        with zeros.open("wb") as handle:
            handle.truncate(megabytes * 1_000_000)  # a hole on disk: nothing is written or held
        with py7zr.SevenZipFile(path, mode="w") as archive:
            archive.write(zeros, "train.json")
        zeros.unlink()
    return path


def load_in_child(archive: Path, mode: str = "bounded") -> dict[str, Any]:
    """One fresh process loading ``archive``: its own peak RSS, wall time and outcome."""
    done = harness.run_process(["-c", CHILD, str(archive), mode], child_env(**DEFAULT_CAPS))
    return {
        "archive": archive.name,
        "archive_kb": round(archive.stat().st_size / 1024, 1),
        "peak_rss_mb": done.peak_mib,
        "seconds": round(done.seconds, 2),
        **json.loads(done.stdout.strip().splitlines()[-1]),
    }


def archive_bomb_rss(work_dir: Path, limit: float = LIMIT) -> dict[str, Any]:
    """Peak RSS of a normal corpus load vs archive bombs over and under the default caps."""
    folder = Path(work_dir) / "hostile"
    folder.mkdir(parents=True, exist_ok=True)
    normal, over, under = normal_archive(folder), bomb_archive(folder, 600), bomb_archive(folder, 300)
    runs = {
        "normal": load_in_child(normal),
        "bomb over the cap": load_in_child(over),
        "bomb under the cap": load_in_child(under),
        "bomb under the cap, py7zr's own steps": load_in_child(under, "py7zr-steps"),
    }
    for name, run in runs.items():
        run["ratio"] = round(run["peak_rss_mb"] / runs["normal"]["peak_rss_mb"], 2)
        run["judged"] = name.startswith("bomb") and "py7zr's own" not in name
    judged = [run["ratio"] for run in runs.values() if run["judged"]]
    return {"limit": limit, "bounded": all(ratio <= limit for ratio in judged), "runs": runs}


# ---------------------------------------------------------------------------- an endless input line

LINE_MB = 300  # the hostile line: 300 MB of one byte, no newline until its end
LINE_RECORDS = 40  # normal records around it (half before, half after)
NEW_TOKENS = 16  # memory, not summaries, is measured


def endless_line_rss(work_dir: Path, limit: float = LIMIT) -> dict[str, Any]:
    """Peak RSS of ``dialogsum-batch`` (tiny model, --threads 1) with and without a 300 MB line.

    The input reaches the child through a pipe, written in 1 MB pieces by this process, so the long
    line exists nowhere whole but inside the child if it holds it. The default ``--max-line-bytes``
    applies; in skip mode the long line must become one error record and every other record a summary.
    """
    from dialogsum_batch.fixtures.synthetic import generate

    model = model_dir("tiny", work_dir)
    harness.fill_cache(model, work_dir, threads=1)
    lines = [json.dumps(record).encode() + b"\n" for record in generate(LINE_RECORDS, seed=5)]
    folder = Path(work_dir) / "hostile"
    normal = summarize_in_child(model, lines, 0, folder, work_dir)
    endless = summarize_in_child(model, lines, LINE_MB, folder, work_dir)
    runs = {"normal": normal, f"one {LINE_MB} MB line": endless}
    for run in runs.values():
        run["ratio"] = round(run["peak_rss_mb"] / normal["peak_rss_mb"], 2)
    complete = endless["summaries"] == LINE_RECORDS and endless["errors"] == 1 and normal["summaries"] == LINE_RECORDS
    return {"limit": limit, "bounded": endless["ratio"] <= limit and complete, "runs": runs}


def summarize_in_child(model: Path, lines: list[bytes], line_mb: int, folder: Path, work_dir: Path) -> dict[str, Any]:
    """One fresh ``dialogsum-batch`` reading ``lines`` from a pipe, a ``line_mb`` MB line in the middle."""
    out, errors = folder / f"line-{line_mb}.jsonl", folder / f"line-{line_mb}.errors.jsonl"
    folder.mkdir(parents=True, exist_ok=True)
    errors.unlink(missing_ok=True)
    options = ["--quiet", "--on-error", "skip", "--errors-out", str(errors)]
    command = harness.summarize_command(["-"], model, output=out, threads=1, max_new_tokens=NEW_TOKENS, options=options)
    env = harness.command_env(work_dir, **DEFAULT_CAPS)
    done = harness.run_process(command, env, feed=lambda pipe: feed(pipe, lines, line_mb), ok=(0, 3))
    return {
        "input_mb": round((sum(map(len, lines)) + line_mb * 1_000_000) / 1e6, 1),
        "exit": done.exit,
        "summaries": len(out.read_text().splitlines()),
        "errors": len(errors.read_text().splitlines()) if errors.exists() else 0,
        "peak_rss_mb": done.peak_mib,
        "seconds": round(done.seconds, 2),
    }


def feed(pipe: IO[bytes], lines: list[bytes], line_mb: int) -> None:
    """Half the records, the long line in 1 MB pieces (when asked), the other half."""
    half = len(lines) // 2
    pipe.writelines(lines[:half])
    if line_mb:
        piece = b"x" * 1_000_000
        for _ in range(line_mb):
            pipe.write(piece)
        pipe.write(b"\n")
    pipe.writelines(lines[half:])


def markdown(result: dict[str, Any]) -> str:
    rows = [
        [name, run["archive_kb"], run["outcome"], run["peak_rss_mb"], run["ratio"], run["seconds"]]
        + ["yes" if run["judged"] else "no"]
        for name, run in result["runs"].items()
    ]
    table = markdown_table(["load", "archive KB", "outcome", "peak RSS MiB", "x normal", "s", "judged"], rows)
    verdict = "PASS" if result["bounded"] else "FAIL"
    return (
        f"# Archive bombs vs a normal corpus load\n\n{verdict}: every judged bomb within "
        f"{result['limit']}x of the normal load's peak RSS.\n\n{table}\n"
    )


def line_markdown(result: dict[str, Any]) -> str:
    rows = [
        [name, run["input_mb"], run["exit"], run["summaries"], run["errors"], run["peak_rss_mb"], run["ratio"]]
        + [run["seconds"]]
        for name, run in result["runs"].items()
    ]
    table = markdown_table(["input", "MB", "exit", "summaries", "errors", "peak RSS MiB", "x normal", "s"], rows)
    verdict = "PASS" if result["bounded"] else "FAIL"
    return (
        f"# An endless input line vs a normal run\n\n{verdict}: `dialogsum-batch` (tiny model, --threads 1, "
        f"default --max-line-bytes, --on-error skip) stays within {result['limit']}x of the normal run's peak "
        f"RSS, and the long line is one error record.\n\n{table}\n"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = harness.arguments(__doc__, __file__, max_new_tokens=False, threads=False)
    parser.add_argument("--limit", type=float, default=LIMIT, help="largest allowed bomb / normal peak RSS")
    parser.add_argument("--only", choices=("archive", "line"), help="run one benchmark (default: both)")
    return harness.parse(parser, argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    benchmarks = {"hostile-archive": (archive_bomb_rss, markdown), "hostile-line": (endless_line_rss, line_markdown)}
    bounded = True
    for name, (measure, render) in benchmarks.items():
        if args.only in (None, name.removeprefix("hostile-")):
            env = environment(1)
            result = {**measure(args.work_dir, args.limit), "environment": env, "command": args.command}
            publish(name, result, render(result), args.output_dir)
            bounded = bounded and result["bounded"]
    return {"bounded": bounded}


if __name__ == "__main__":
    sys.exit(0 if main()["bounded"] else 1)
