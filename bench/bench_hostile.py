"""Hostile inputs keep memory bounded: peak RSS of an archive bomb vs a normal corpus load.

Each load runs in a fresh ``python -c`` process (``load_corpus`` on one 7z archive) and its own peak
resident set size comes from the kernel's accounting of that child alone (``os.wait4``):

- **normal**: a SAMSum-sized corpus.7z (synthetic chats, 14,732 / 818 / 819 records, about 12 MB
  expanded), default caps;
- **bomb over the cap**: 600 MB of zeros in one member, past the 512 MiB default per-member cap:
  refused from the archive's listing;
- **bomb under the cap**: 300 MB of zeros, within the defaults: extracted in bounded steps to a
  temporary folder, then refused as a JSON Lines line over the record limit;
- **bomb under the cap, py7zr's own steps** (for information, not judged): the same with the
  decompression step left at py7zr's default (up to 128 MB).

Each bomb's peak must stay within ``--limit`` (1.5x) of the normal load's. Archives are built once
into the work folder (bombs from sparse files, so building them costs no memory) by a child process
of their own: Linux counts the RSS a child inherited before ``exec`` in its peak, so the measuring
process stays small.

An endless input line gets the same treatment (``endless_line_rss``): ``dialogsum-batch`` on the tiny
model, ``--threads 1``, 40 records through a pipe, vs the same with a 300 MB line in the middle.

    python bench/bench_hostile.py                 # writes bench/results/hostile-{archive,line}.{json,md}
    python bench/bench_hostile.py --only line --limit 1.5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, WORK_DIR, child_env, markdown_table, write_results  # noqa: E402

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
    env = child_env(**DEFAULT_CAPS)
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen([sys.executable, "-c", CHILD, str(archive), mode], env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage, peak RSS included
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        raise SystemExit(f"{archive.name}: exit {process.returncode}: {stderr[-2000:]}")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {
        "archive": archive.name,
        "archive_kb": round(archive.stat().st_size / 1024, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "seconds": round(time.perf_counter() - started, 2),
        **result,
    }


def build_archives(folder: Path) -> dict[str, Path]:
    """The normal corpus and the two bombs, built once."""
    folder.mkdir(parents=True, exist_ok=True)
    return {"normal": normal_archive(folder), "over": bomb_archive(folder, 600), "under": bomb_archive(folder, 300)}


def archive_bomb_rss(work_dir: Path = WORK_DIR, limit: float = LIMIT) -> dict[str, Any]:
    """Peak RSS of a normal corpus load vs archive bombs over and under the default caps."""
    folder = work_dir / "hostile"
    # built in a child: datasets and py7zr imported here would count in every measured child's peak
    subprocess.run([sys.executable, __file__, "--build", str(folder)], check=True, env=child_env(**DEFAULT_CAPS))
    archives = {
        "normal": folder / "normal-corpus.7z",
        "over": folder / "bomb-600mb.7z",
        "under": folder / "bomb-300mb.7z",
    }
    normal = load_in_child(archives["normal"])
    runs = {
        "normal": normal,
        "bomb over the cap": load_in_child(archives["over"]),
        "bomb under the cap": load_in_child(archives["under"]),
        "bomb under the cap, py7zr's own steps": load_in_child(archives["under"], "py7zr-steps"),
    }
    for name, run in runs.items():
        run["ratio"] = round(run["peak_rss_mb"] / normal["peak_rss_mb"], 2)
        run["judged"] = name.startswith("bomb") and "py7zr's own" not in name
    judged = [run["ratio"] for run in runs.values() if run["judged"]]
    return {
        "limit": limit,
        "bounded": all(ratio <= limit for ratio in judged),
        "runs": runs,
        "environment": {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": platform.python_version(),
            "py7zr": _version("py7zr"),
            "cpu_cores": os.cpu_count(),
            "load_average": list(os.getloadavg()),
        },
    }


# ---------------------------------------------------------------------------- an endless input line

LINE_MB = 300  # the hostile line: 300 MB of one byte, no newline until its end
LINE_RECORDS = 40  # normal records around it (half before, half after)


def endless_line_rss(work_dir: Path = WORK_DIR, limit: float = LIMIT) -> dict[str, Any]:
    """Peak RSS of ``dialogsum-batch`` (tiny real model, --threads 1) with and without a 300 MB line.

    The input reaches the child through a pipe, written in 1 MB pieces by this process, so the long
    line exists nowhere whole but inside the child if it holds it. The default ``--max-line-bytes``
    applies; in skip mode the long line must become one error record and every other record a summary.
    """
    folder = work_dir / "hostile"
    model = folder / "tiny-model"
    if not (model / "config.json").is_file():  # built in a child, for the same reason as the archives
        subprocess.run(
            [sys.executable, "-m", "dialogsum_batch.fixtures.tiny", str(model)],
            check=True,
            env=child_env(**DEFAULT_CAPS),
            stdout=subprocess.DEVNULL,
        )
    from dialogsum_batch.fixtures.synthetic import generate

    lines = [json.dumps(record).encode() + b"\n" for record in generate(LINE_RECORDS, seed=5)]
    normal = summarize_in_child(model, lines, 0)
    endless = summarize_in_child(model, lines, LINE_MB)
    runs = {"normal": normal, f"one {LINE_MB} MB line": endless}
    for run in runs.values():
        run["ratio"] = round(run["peak_rss_mb"] / normal["peak_rss_mb"], 2)
    complete = endless["summaries"] == LINE_RECORDS and endless["errors"] == 1 and normal["summaries"] == LINE_RECORDS
    return {
        "limit": limit,
        "bounded": endless["ratio"] <= limit and complete,
        "runs": runs,
        "environment": {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": platform.python_version(),
            "cpu_cores": os.cpu_count(),
            "load_average": list(os.getloadavg()),
        },
    }


def summarize_in_child(model: Path, lines: list[bytes], line_mb: int) -> dict[str, Any]:
    """One fresh ``dialogsum-batch`` reading ``lines`` from a pipe, a ``line_mb`` MB line in the middle."""
    with tempfile.TemporaryDirectory() as tmp:
        out, errors = Path(tmp) / "out.jsonl", Path(tmp) / "errors.jsonl"
        command = [
            sys.executable,
            "-m",
            "dialogsum_batch",
            "-m",
            str(model),
            "--threads",
            "1",
            "--quiet",
            "--max-new-tokens",
            "16",
            "--on-error",
            "skip",
            "--errors-out",
            str(errors),
            "-o",
            str(out),
            "-",
        ]
        started = time.perf_counter()
        with tempfile.TemporaryFile() as err:
            process = subprocess.Popen(command, env=child_env(**DEFAULT_CAPS), stdin=subprocess.PIPE, stderr=err)
            feed(process.stdin, lines, line_mb)
            _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage, peak RSS included
            err.seek(0)
            stderr = err.read().decode(errors="replace")
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 3):
            raise SystemExit(f"dialogsum-batch: exit {code}: {stderr[-2000:]}")
        return {
            "input_mb": round((sum(map(len, lines)) + line_mb * 1_000_000) / 1e6, 1),
            "exit": code,
            "summaries": len(out.read_text().splitlines()),
            "errors": len(errors.read_text().splitlines()) if errors.exists() else 0,
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "seconds": round(time.perf_counter() - started, 2),
        }


def feed(pipe: Any, lines: list[bytes], line_mb: int) -> None:
    """Half the records, the long line in 1 MB pieces (when asked), the other half; then end of input."""
    half = len(lines) // 2
    try:
        pipe.writelines(lines[:half])
        if line_mb:
            piece = b"x" * 1_000_000
            for _ in range(line_mb):
                pipe.write(piece)
            pipe.write(b"\n")
        pipe.writelines(lines[half:])
    except BrokenPipeError:
        pass  # the child stopped reading: its exit status says why
    finally:
        try:
            pipe.close()
        except BrokenPipeError:
            pass


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def markdown(result: dict[str, Any]) -> str:
    rows = [
        [
            name,
            run["archive_kb"],
            run["outcome"],
            run["peak_rss_mb"],
            run["ratio"],
            run["seconds"],
            "yes" if run["judged"] else "no",
        ]
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
        [
            name,
            run["input_mb"],
            run["exit"],
            run["summaries"],
            run["errors"],
            run["peak_rss_mb"],
            run["ratio"],
            run["seconds"],
        ]
        for name, run in result["runs"].items()
    ]
    table = markdown_table(["input", "MB", "exit", "summaries", "errors", "peak RSS MiB", "x normal", "s"], rows)
    verdict = "PASS" if result["bounded"] else "FAIL"
    return (
        f"# An endless input line vs a normal run\n\n{verdict}: `dialogsum-batch` (tiny model, --threads 1, "
        f"default --max-line-bytes, --on-error skip) stays within {result['limit']}x of the normal run's peak "
        f"RSS, and the long line is one error record.\n\n{table}\n"
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=float, default=LIMIT, help="largest allowed bomb / normal peak RSS")
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR, help="where the archives are built and kept")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR, help="where results are written")
    parser.add_argument("--only", choices=("archive", "line"), help="run one benchmark (default: both)")
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)  # internal: build archives in FOLDER, exit
    args = parser.parse_args(argv)
    if args.build:
        build_archives(args.build)
        return {"bounded": True}
    results = []
    if args.only in (None, "archive"):
        results.append(("hostile-archive", archive_bomb_rss(args.work_dir, args.limit), markdown))
    if args.only in (None, "line"):
        results.append(("hostile-line", endless_line_rss(args.work_dir, args.limit), line_markdown))
    for name, result, render in results:
        text = render(result)
        print(text)
        write_results(name, result, text, args.output_dir)
    return {"bounded": all(result["bounded"] for _, result, _ in results)}


if __name__ == "__main__":
    sys.exit(0 if main()["bounded"] else 1)
