"""Streaming keeps memory flat: peak RSS of the dialogsum-batch command on 20,000 vs 2,000 records.

Each size runs in a fresh process, exactly as a user would start it (``python -m dialogsum_batch``
on a synthetic JSONL file with reference summaries, so per-record ROUGE is scored too), through
the tiny random Pegasus. The peak resident set size comes from the kernel's accounting of that
child alone (``os.wait4``). A short ``--max-new-tokens`` keeps 20,000 records to about a minute
on one core; memory depends on how many records are held at once, not on summary length.

    python bench/bench_memory.py                       # 2,000 vs 20,000, limit 1.3x
    python bench/bench_memory.py --sizes 500,5000 --limit 1.3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS_DIR, WORK_DIR, child_env, environment, markdown_table, model_dir, write_results  # noqa: E402

LIMIT = 1.3  # the largest run's peak RSS may be at most this multiple of the smallest's


def write_input(path: Path, n: int, seed: int = 0) -> Path:
    """``n`` synthetic records with summaries, streamed to a JSONL file."""
    from dialogsum_batch.fixtures.synthetic import generate

    with path.open("w", encoding="utf-8") as handle:
        for record in generate(n, seed=seed):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def run_size(n: int, model: Path, folder: Path, max_new_tokens: int, threads: int) -> dict[str, Any]:
    """One fresh ``dialogsum-batch`` process over ``n`` records; its own peak RSS, speed and counts."""
    source = write_input(folder / f"in-{n}.jsonl", n)
    output, metrics = folder / f"out-{n}.jsonl", folder / f"metrics-{n}.json"
    command = [
        sys.executable,
        "-m",
        "dialogsum_batch",
        str(source),
        "-m",
        str(model),
        "-o",
        str(output),
        "--max-new-tokens",
        str(max_new_tokens),
        "--threads",
        str(threads),
        "--metrics-out",
        str(metrics),
        "-q",
    ]
    errors = folder / f"stderr-{n}.txt"
    started = time.perf_counter()
    with errors.open("w") as stderr:
        process = subprocess.Popen(command, env=child_env(), stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage, peak RSS included
    process.returncode = code = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{n} records: exit {code}: {errors.read_text()[-2000:]}")
    written = sum(1 for _ in output.open(encoding="utf-8"))
    report = json.loads(metrics.read_text(encoding="utf-8"))
    return {
        "records": n,
        "written": written,
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "process_seconds": round(seconds, 1),
        "dialogues_per_second": report["dialogues_per_second"],
        "padding_efficiency": report["padding_efficiency"],
        "batches": report["batches"],
        "rouge_records": report.get("rouge_records", 0),
    }


def markdown(result: dict[str, Any], command: str) -> str:
    rows = [
        [
            r["records"],
            r["written"],
            r["peak_rss_mb"],
            r["process_seconds"],
            r["dialogues_per_second"],
            r["padding_efficiency"],
        ]
        for r in result["runs"]
    ]
    table = markdown_table(["records", "written", "peak RSS MiB", "process s", "dialogues/s", "padding eff."], rows)
    verdict = "PASS" if result["flat"] else "FAIL"
    return (
        f"{table}\n\nPeak RSS ratio {result['ratio']:.3f} (limit {result['limit']}): {verdict}. "
        f"Tiny random Pegasus, max_new_tokens {result['max_new_tokens']}, {result['threads']} thread(s); "
        f"load average {result['environment']['load_average']}.\n\nReproduce: `{command}`\n"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,20000", help="Comma list of record counts; first and last compared")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the child (0 = its auto choice)")
    parser.add_argument("--limit", type=float, default=LIMIT, help="Largest allowed ratio of peak RSS")
    parser.add_argument("--name", default="memory", help="Result file name (without suffix)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--work-dir", type=Path, default=WORK_DIR, help="Where the tiny model is kept")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    model = model_dir("tiny", args.work_dir)
    with tempfile.TemporaryDirectory(prefix="dialogsum-mem-") as tmp:
        runs = []
        for n in sizes:
            runs.append(run_size(n, model, Path(tmp), args.max_new_tokens, args.threads))
            print(
                f"{n} records: peak RSS {runs[-1]['peak_rss_mb']} MiB, {runs[-1]['process_seconds']} s", file=sys.stderr
            )
    ratio = runs[-1]["peak_rss_mb"] / runs[0]["peak_rss_mb"]
    lost = [r["records"] for r in runs if r["written"] != r["records"]]
    result = {
        "runs": runs,
        "ratio": round(ratio, 3),
        "limit": args.limit,
        "flat": ratio <= args.limit and not lost,
        "max_new_tokens": args.max_new_tokens,
        "threads": args.threads,
        "environment": environment(args.threads),
    }
    command = "python bench/bench_memory.py " + " ".join(sys.argv[1:] if argv is None else argv)
    table = markdown(result, command.strip())
    write_results(args.name, result, table, args.output_dir)
    print(table)
    if not result["flat"]:
        raise SystemExit(1)
    return result


if __name__ == "__main__":
    main()
