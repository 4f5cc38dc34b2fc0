"""Ray's overhead against the local command: the same records, model and cores, whole processes.

Each system runs in a fresh process over the same JSONL file and writes the same rows:

* **local**: ``dialogsum-batch summarize`` with ``--threads CORES`` (one process, every core);
* **ray 1xCORES**: ``dialogsum-batch ray`` on a local Ray it starts, one model actor holding every core
  (``--cpus-per-worker CORES``): Ray's cost alone (start, read tasks, moving rows, the driver writing
  them), the engine as local;
* **ray CORESx1**: as many one-thread actors as cores: how Ray scales out on one machine.

Decoding is greedy, the rest the command's defaults (backend, summary length) unless given. The systems
run in interleaved rounds and the best of ``--repeats`` counts. At two or more ``--records`` sizes a line
``seconds = fixed + per_dialogue * n`` is fitted to each system, which separates Ray's start-up (cluster,
actors, model loads) from its cost per dialogue: the two figures ``docs/scale.md`` sizes a fleet from.
Every Ray run's rows (ids and summaries) are checked against the local command's.

\b
    python bench/bench_ray.py                                        # mid model, 64 and 256 records
    python bench/bench_ray.py --model tiny --records 8,16 --repeats 1 --max-new-tokens 4   # smoke
    invoke bench-ray
Results: bench/results/bench_ray.json and .md (``--name`` changes the file names).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from common import dialogues, markdown_table, model_dir, read_records, usable_cores, write_records

LOCAL = "local"
RAY = ("-m", "dialogsum_batch", "ray")  # ``dialogsum-batch ray``


def systems(cores: int) -> dict[str, list[str] | None]:
    """Each Ray system's options beyond the shared ones, on ``cores`` cores in all (None: the local command)."""
    return {
        LOCAL: None,
        f"ray 1x{cores}": ["--workers", "1", "--cpus-per-worker", str(cores)],
        f"ray {cores}x1": ["--workers", str(cores), "--cpus-per-worker", "1"],
    }


# ---------------------------------------------------------------------------- one process


def run_system(system: str, model: Path, records: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One whole process: its wall time, the job's own seconds (from --metrics-out) and its rows."""
    folder = work(args)
    output, metrics = folder / "out.jsonl", folder / "metrics.json"
    output.unlink(missing_ok=True)
    done = harness.run_process(command(system, model, records, output, metrics, args), job_env(args))
    rows = read_records(output)
    return {
        "process_seconds": round(done.seconds, 3),
        "job_seconds": json.loads(metrics.read_text())["seconds"],
        "rows": [(row["id"], row["summary"]) for row in rows],
    }


def command(system: str, model: Path, records: Path, output: Path, metrics: Path, args: argparse.Namespace) -> list:
    """The local command with ``--threads CORES``, or ``dialogsum-batch ray`` with the system's actors."""
    actors = systems(args.threads)[system]
    local = actors is None
    options = [*(["--backend", args.backend] if args.backend else []), "-q"]
    if not local:
        options += [*actors, "--batch-size", str(args.batch_size)]
        options += ["--address", args.address] if args.address else []
    return harness.summarize_command(
        [records],
        model,
        output=output,
        metrics=metrics,
        threads=args.threads if local else None,  # an actor's threads are its CPUs
        beams=1,
        max_new_tokens=args.max_new_tokens,
        options=options,
        **({} if local else {"program": RAY}),
    )


def job_env(args: argparse.Namespace) -> dict[str, str]:
    """The measured commands' environment; the local Ray each job starts inherits it."""
    return harness.command_env(args.work_dir, RAY_AUTH_MODE="disabled", OMP_NUM_THREADS=None)


def work(args: argparse.Namespace) -> Path:
    return Path(args.work_dir) / "ray-bench"


# ---------------------------------------------------------------------------- measurements


def measure_size(model: Path, count: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every system over ``count`` records, best of ``repeats`` interleaved rounds; rows checked."""
    rows = dialogues(count, args.source, seed=1)
    records = write_records(work(args) / f"records-{count}.jsonl", rows, reference=False)
    runs = harness.rounds(
        systems(args.threads),
        args.repeats,
        lambda system: run_system(system, model, records, args),
        label=lambda system: f"{count} records: {system}",
    )
    best = {system: harness.fastest(tried, "process_seconds") for system, tried in runs.items()}
    local = best[LOCAL]
    return [
        {
            "system": system,
            "records": count,
            "process_seconds": run["process_seconds"],
            "job_seconds": run["job_seconds"],
            "dialogues_per_second": round(count / run["process_seconds"], 3),
            "over_local": round(run["process_seconds"] / local["process_seconds"], 3),
            "same_rows_as_local": run["rows"] == local["rows"],
        }
        for system, run in best.items()
    ]


def fitted(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per system, a least-squares line through (records, process seconds): fixed seconds and per dialogue."""
    lines: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(run["system"] for run in runs):
        points = [(run["records"], run["process_seconds"]) for run in runs if run["system"] == name]
        if len({n for n, _ in points}) < 2:
            continue
        mean_n = sum(n for n, _ in points) / len(points)
        mean_s = sum(s for _, s in points) / len(points)
        slope = sum((n - mean_n) * (s - mean_s) for n, s in points) / sum((n - mean_n) ** 2 for n, _ in points)
        lines[name] = {
            "fixed_seconds": round(mean_s - slope * mean_n, 3),
            "seconds_per_dialogue": round(slope, 5),
            "dialogues_per_second_after_start": round(1 / slope, 3) if slope > 0 else None,  # noise: no slope
        }
    return lines


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    model = model_dir(args.model, args.work_dir)
    backend = ["--backend", args.backend] if args.backend else []
    harness.fill_cache(model, args.work_dir, threads=args.threads, options=backend)  # a conversion: paid before
    runs = [run for count in args.records for run in measure_size(model, count, args)]
    return {
        "backend": args.backend,
        "batch_size": args.batch_size,
        "address": args.address,
        "ray": ray.__version__,
        "runs": runs,
        "fit": fitted(runs),
    }


# ---------------------------------------------------------------------------- report


RUN_COLUMNS = ("system", "records", "process_seconds", "job_seconds", "dialogues_per_second")


def run_row(run: dict[str, Any]) -> list[Any]:
    """A run as a table row: its figures, then its time over the local command's and whether the rows agree."""
    agree = "yes" if run["same_rows_as_local"] else "NO"
    return [*(run[key] for key in RUN_COLUMNS), f"{run['over_local']:.2f}x", agree]


def markdown(report: dict[str, Any]) -> str:
    table = markdown_table(
        ["system", "records", "process s", "job s", "dialogues/s", "time / local", "rows = local"],
        [run_row(run) for run in report["runs"]],
    )
    fits = markdown_table(
        ["system", "fixed s", "s / dialogue", "dialogues/s after start"],
        [
            [name, fit["fixed_seconds"], fit["seconds_per_dialogue"], fit["dialogues_per_second_after_start"]]
            for name, fit in report["fit"].items()
        ],
    )
    length = report["max_new_tokens"] or "the model's"
    where = f"the cluster at {report['address']}" if report["address"] else "a local Ray each"
    return "\n".join(
        [
            f"Model {report['model']} (backend {report['backend'] or 'the default'}), {report['source']} records, "
            f"greedy, {length} new tokens, Ray batches of {report['batch_size']} on {where}, best of "
            f"{report['repeats']}; cores: {report['threads']} for every system, ray {report['ray']}. Whole "
            "processes: Ray's start and the model loads included.",
            "",
            table,
            "",
            "Fitted over the sizes: seconds = fixed + per dialogue x records.",
            "",
            fits,
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = harness.arguments(
        __doc__, __file__, model="mid", records="64,256", threads=False, repeats=2, name="bench_ray"
    )
    add = parser.add_argument
    add(
        "--threads",
        "--cores",
        type=int,
        default=usable_cores(),
        help="cores every system gets in all: the local --threads, the Ray actors' CPUs (%(default)s)",
    )
    add("--backend", choices=["auto", "transformers", "ctranslate2"], help="backend [default: the command's]")
    add("--batch-size", type=int, default=64, help="rows Ray hands an actor at once (%(default)s)")
    add("--address", help="run the Ray systems on this cluster instead of a local Ray each")
    return harness.parse(parser, argv)


main = harness.benchmark_main(parse_args, run_all, markdown)


if __name__ == "__main__":
    main()
