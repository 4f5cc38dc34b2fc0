"""``--threads 0`` (the default) against explicit thread counts, in the situations a cron job meets.

* **idle**: nothing else runs;
* **after a busy minute**: a busy loop on every usable core for ``--busy-seconds`` (60), ending just
  before the run starts: the 1-minute load average still reads "busy" while the cores are idle
  (the case issue 15 found: the load-average rule picked one thread, 1.57x slower than two);
* **concurrent job**: one busy loop runs throughout, taking one core.

Each setting (``--threads 0``, then 1 .. every usable core) runs the mid-size model over the same
records in a fresh ``dialogsum-batch`` process, on the command's default backend unless ``--backend``
names one (whole-process wall time: model load and the idleness sample included); in the busy-minute
case every setting gets its own busy minute first. The best of ``--repeats`` counts. Target: the default
within 1.15x of the best explicit count in every case.

\b
    python bench/bench_threads.py                                     # about 15 minutes on 2 cores
    python bench/bench_threads.py --records 8 --busy-seconds 5 --repeats 1 --max-new-tokens 8   # smoke
    invoke bench-threads
Results: bench/results/bench_threads.json and .md (``--name`` changes the file names).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from common import dialogues, markdown_table, model_dir, usable_cores, write_records

CASES = ("idle", "after-busy-minute", "concurrent-job")
TARGET = 1.15  # the default's time over the best explicit count's, at most
SPIN = "import sys, time\nend = time.time() + float(sys.argv[1])\nwhile time.time() < end:\n    pass\n"


# ---------------------------------------------------------------------------- load


def spin(cores: int, seconds: float) -> list[subprocess.Popen]:
    """``cores`` busy-loop processes that stop by themselves after ``seconds``."""
    return [subprocess.Popen([sys.executable, "-c", SPIN, str(seconds)]) for _ in range(cores)]


def busy_minute(cores: int, seconds: float) -> None:
    """Every usable core busy for ``seconds``, returning the moment the loops end."""
    for process in spin(cores, seconds):
        process.wait()


@contextmanager
def concurrent_job() -> Iterator[None]:
    """One core kept busy for the block (another job on the machine)."""
    (process,) = spin(1, 24 * 3600)
    time.sleep(1.0)  # running, as a job that started earlier would be
    try:
        yield
    finally:
        process.terminate()
        process.wait()


def load_rule(cores: int) -> int:
    """What the old rule (cores minus the 1-minute load average) would pick now, for the record."""
    return max(1, min(cores, round(cores - os.getloadavg()[0])))


# ---------------------------------------------------------------------------- one run


def run_once(model: Path, records: Path, threads: int, args: argparse.Namespace) -> dict[str, Any]:
    """One ``dialogsum-batch`` process; its wall time and the thread count it ran with."""
    folder = Path(args.work_dir) / "threads-bench"
    metrics = folder / "metrics.json"
    options = ["--backend", args.backend, "-q"] if args.backend else ["-q"]
    command = harness.summarize_command(
        [records],
        model,
        output=folder / "out.jsonl",
        metrics=metrics,
        threads=threads,
        beams=1,
        max_new_tokens=args.max_new_tokens,
        options=options,
    )
    load, old_rule = round(os.getloadavg()[0], 2), load_rule(usable_cores())
    done = harness.run_process(command, harness.command_env(args.work_dir))
    report = json.loads(metrics.read_text())
    return {
        "asked": threads,
        "threads": report["model"].get("threads"),
        "process_seconds": round(done.seconds, 3),
        "engine_seconds": report["seconds"],
        "load_average_at_start": load,
        "load_rule_would_pick": old_rule,
    }


def measure_case(case: str, model: Path, records: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Every thread setting in one situation, best of ``repeats``; the default's ratio to the best explicit."""
    cores = usable_cores()
    runs = harness.rounds(
        [0, *range(1, cores + 1)],
        args.repeats,
        lambda threads: run_in(case, model, records, threads, args, cores),
        label=lambda threads: f"{case}: --threads {threads}",
    )
    best = {threads: harness.fastest(tried, "process_seconds") for threads, tried in runs.items()}
    explicit = harness.fastest((run for asked, run in best.items() if asked), "process_seconds")
    ratio = round(best[0]["process_seconds"] / explicit["process_seconds"], 3)
    return {
        "case": case,
        "runs": list(best.values()),
        "best_explicit": explicit["asked"],
        "ratio": ratio,
        "pass": ratio <= TARGET,
    }


def run_in(case: str, model: Path, records: Path, threads: int, args: argparse.Namespace, cores: int) -> dict[str, Any]:
    """One run under the case's load."""
    if case == "after-busy-minute":
        busy_minute(cores, args.busy_seconds)
    if case == "concurrent-job":
        with concurrent_job():
            return run_once(model, records, threads, args)
    return run_once(model, records, threads, args)


# ---------------------------------------------------------------------------- report


def markdown(report: dict[str, Any]) -> str:
    rows = [
        [case["case"], run["asked"] or "0 (default)", run["threads"], run["process_seconds"], run["engine_seconds"]]
        + [run["load_average_at_start"], run["load_rule_would_pick"]]
        + [f"{case['ratio']:.2f}x {'PASS' if case['pass'] else 'FAIL'}" if not run["asked"] else ""]
        for case in report["cases"]
        for run in case["runs"]
    ]
    headers = ["case", "--threads", "ran with", "process s", "engine s", "load avg at start", "load rule would pick"]
    table = markdown_table([*headers, "default / best explicit"], rows)
    return (
        f"Model {report['model']} ({report['backend'] or 'the default backend'}), {report['records']} "
        f"{report['source']} records, greedy, max_new_tokens {report['max_new_tokens']}, best of {report['repeats']}; "
        f"busy minute {report['busy_seconds']} s. Target: the default within {TARGET}x of the best explicit count."
        f"\n\n{table}"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = harness.arguments(
        __doc__, __file__, model="mid", records=96, threads=False, repeats=2, name="bench_threads"
    )
    parser.add_argument(
        "--backend",
        choices=["transformers", "ctranslate2"],
        help="backend [default: the command's] (ctranslate2 converts the model into a cache in the work folder)",
    )
    parser.add_argument("--busy-seconds", type=float, default=60.0, help="length of the busy minute (%(default)s)")
    parser.add_argument(
        "--cases", type=harness.choice_list(CASES), default=",".join(CASES), help="comma list of %(default)s"
    )
    return harness.parse(parser, argv)


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Every case; whether the default kept within the target in all."""
    model = model_dir(args.model, args.work_dir)
    records = write_records(
        Path(args.work_dir) / "threads-bench" / "records.jsonl", dialogues(args.records, args.source, seed=1)
    )
    harness.fill_cache(model, args.work_dir, **({"options": ["--backend", args.backend]} if args.backend else {}))
    report = {
        "backend": args.backend,
        "busy_seconds": args.busy_seconds,
        "target": TARGET,
        "cases": [measure_case(case, model, records, args) for case in args.cases],
    }
    report["pass"] = all(case["pass"] for case in report["cases"])
    return report


main = harness.benchmark_main(parse_args, run_all, markdown)


if __name__ == "__main__":
    main()
