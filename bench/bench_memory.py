"""Streaming keeps memory flat: peak RSS of the dialogsum-batch command on 20,000 vs 2,000 records.

Each size runs in a fresh process, exactly as a user would start it (``python -m dialogsum_batch``
on a synthetic JSONL file with reference summaries, so per-record ROUGE is scored too), through
the tiny random Pegasus. The peak resident set size is the process's own (VmHWM, read as it exits).
A short ``--max-new-tokens`` keeps 20,000 records to about a minute on one core; memory depends on
how many records are held at once, not on summary length.

    python bench/bench_memory.py                       # 2,000 vs 20,000, limit 1.3x
    python bench/bench_memory.py --sizes 500,5000 --limit 1.3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from common import dialogues, markdown_table, model_dir, write_records

LIMIT = 1.3  # the largest run's peak RSS may be at most this multiple of the smallest's
NEW_TOKENS = 8  # memory follows the records held at once, not summary length: short summaries keep 20,000 quick


def run_size(n: int, model: Path, folder: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One fresh ``dialogsum-batch`` process over ``n`` records; its own peak RSS, speed and counts."""
    source = write_records(folder / f"in-{n}.jsonl", dialogues(n, "synthetic"))
    output, metrics = folder / f"out-{n}.jsonl", folder / f"metrics-{n}.json"
    command = harness.summarize_command(
        [source],
        model,
        output=output,
        metrics=metrics,
        threads=args.threads,
        max_new_tokens=args.max_new_tokens,
        options=["-q"],
    )
    done = harness.run_process(command, harness.command_env(args.work_dir))
    report = json.loads(metrics.read_text(encoding="utf-8"))
    return {
        "records": n,
        "written": sum(1 for _ in output.open(encoding="utf-8")),
        "peak_rss_mb": done.peak_mib,
        "process_seconds": round(done.seconds, 1),
        "dialogues_per_second": report["dialogues_per_second"],
        "padding_efficiency": report["padding_efficiency"],
        "batches": report["batches"],
        "rouge_records": report.get("rouge_records", 0),
    }


def markdown(result: dict[str, Any]) -> str:
    rows = [
        [r["records"], r["written"], r["peak_rss_mb"], r["process_seconds"], r["dialogues_per_second"]]
        + [r["padding_efficiency"]]
        for r in result["runs"]
    ]
    table = markdown_table(["records", "written", "peak RSS MiB", "process s", "dialogues/s", "padding eff."], rows)
    verdict = "PASS" if result["flat"] else "FAIL"
    return (
        f"{table}\n\nPeak RSS ratio {result['ratio']:.3f} (limit {result['limit']}): {verdict}. "
        f"Tiny random Pegasus, max_new_tokens {result['max_new_tokens']}, --threads {result['threads']}."
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = harness.arguments(__doc__, __file__, max_new_tokens=NEW_TOKENS, name="memory")
    parser.add_argument(
        "--sizes", type=harness.int_list, default="2000,20000", help="record counts; first and last compared"
    )
    parser.add_argument("--limit", type=float, default=LIMIT, help="largest allowed ratio of peak RSS (%(default)s)")
    return harness.parse(parser, argv)


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Every size in a process of its own; whether the peak stayed flat and no record was lost."""
    model = model_dir("tiny", args.work_dir)
    harness.fill_cache(model, args.work_dir, threads=args.threads)
    with tempfile.TemporaryDirectory(prefix="dialogsum-mem-") as tmp:
        runs = []
        for n in args.sizes:
            runs.append(run_size(n, model, Path(tmp), args))
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
    }
    return result


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    result = harness.benchmark_main(parse_args, run_all, markdown)(argv)
    if not result["flat"]:
        raise SystemExit(1)
    return result


if __name__ == "__main__":
    main()
