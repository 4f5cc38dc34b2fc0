"""The command with its batch allocator (glibc: one arena, no mmap, no trim) against glibc's defaults.

``dialogsum_batch/allocator.py`` keeps freed memory for the next batch; ``DIALOGSUM_ALLOCATOR=system``
leaves glibc as it is. Both ways run the default (CTranslate2 float32) and ``--fast`` (int8) as whole
processes on the same records at equal threads, in rounds, best of ``--repeats``: seconds, the process's
minor page faults (pages the kernel had to hand it), its peak memory, and whether the summaries are
the same.

\b
    python bench/bench_allocator.py --model mid --records 160 --source dialogsum --threads 1,2 --repeats 3
    python bench/bench_allocator.py --model tiny --records 8 --threads 1 --repeats 1   # smoke
Results: bench/results/bench_allocator.json and .md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from common import dialogues, markdown_table, model_dir, read_records, write_records

from dialogsum_batch.allocator import KEPT, OPT_OUT, SYSTEM

SYSTEMS = {"default": [], "--fast": ["--fast"]}  # name -> the command's extra arguments
ALLOCATORS = {KEPT: None, SYSTEM: SYSTEM}  # what the metrics say -> DIALOGSUM_ALLOCATOR


def run_one(case: tuple[str, str], model: Path, records: Path, threads: int, args: argparse.Namespace) -> dict:
    system, allocator = case
    folder = Path(args.work_dir) / "allocator-bench"
    output = folder / f"{system.strip('-')}-{allocator.split(':')[0]}-{threads}.jsonl"
    output.unlink(missing_ok=True)
    command = harness.summarize_command(
        [records], model, output=output, threads=threads, max_new_tokens=args.max_new_tokens, options=SYSTEMS[system]
    )
    env = harness.command_env(args.work_dir, OMP_NUM_THREADS=str(threads), **{OPT_OUT: ALLOCATORS[allocator]})
    done = harness.run_process(command, env)
    return {
        "seconds": round(done.seconds, 3),
        "page_faults": done.page_faults,
        "peak_mib": done.peak_mib,
        "summaries": [row["summary"] for row in read_records(output)],
    }


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    model = model_dir(args.model, args.work_dir)
    records = write_records(
        Path(args.work_dir) / "allocator-bench" / "records.jsonl",
        dialogues(args.records, args.source, seed=1),
        reference=False,
    )
    harness.fill_cache(model, args.work_dir)
    harness.fill_cache(model, args.work_dir, options=["--fast"])
    return {"runs": [row for threads in args.threads for row in at_threads(threads, model, records, args)]}


def at_threads(threads: int, model: Path, records: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every system with each allocator, in rounds at ``threads``; the best of each, against glibc's defaults."""
    cases = [(system, allocator) for system in SYSTEMS for allocator in ALLOCATORS]
    runs = harness.rounds(
        cases,
        args.repeats,
        lambda case: run_one(case, model, records, threads, args),
        label=lambda case: f"{case[0]} ({case[1]}), {threads} thread(s)",
    )
    best = {case: harness.fastest(tried) for case, tried in runs.items()}
    rows = []
    for (system, allocator), run in best.items():
        glibc = best[(system, SYSTEM)]
        rows.append(
            {
                "system": system,
                "allocator": allocator,
                "threads": threads,
                "seconds": run["seconds"],
                "vs_glibc_defaults": round(glibc["seconds"] / run["seconds"], 2),
                "page_faults": run["page_faults"],
                "peak_mib": run["peak_mib"],
                "same_summaries": harness.same_share(run["summaries"], glibc["summaries"]),
            }
        )
    return rows


def markdown(report: dict[str, Any]) -> str:
    table = markdown_table(
        ["system", "allocator", "threads", "process s", "speedup", "page faults", "peak MiB", "same summaries"],
        [
            [
                r["system"],
                r["allocator"],
                r["threads"],
                r["seconds"],
                f"{r['vs_glibc_defaults']:.2f}x",
                f"{r['page_faults']:,}",
                r["peak_mib"],
                r["same_summaries"],
            ]
            for r in report["runs"]
        ],
    )
    return "\n".join(
        [
            f"Model {report['model']}, {report['records']} {report['source']} records, max_new_tokens "
            f"{report['max_new_tokens']}, best of {report['repeats']}, whole processes (cached conversions).",
            "",
            table,
            "",
            f"speedup: over the same system with glibc's defaults (`{OPT_OUT}=system`); same summaries: share "
            "equal to that run's.",
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = harness.arguments(
        __doc__, __file__, model="mid", records=160, threads="1,2", repeats=3, name="bench_allocator"
    )
    return harness.parse(parser, argv)


main = harness.benchmark_main(parse_args, run_all, markdown)


if __name__ == "__main__":
    main()
