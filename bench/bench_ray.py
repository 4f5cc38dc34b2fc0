"""Ray's overhead against the local command: the same records, model and cores, whole processes.

Each system runs in a fresh process over the same JSONL file and writes the same rows:

* **local**: ``python -m dialogsum_batch`` with ``--threads CORES`` (one process, every core);
* **ray 1xCORES**: ``python -m dialogsum_batch.ray`` on a local Ray it starts, one model actor holding
  every core (``--cpus-per-worker CORES``): Ray's cost alone (start, read tasks, moving rows, the driver
  writing them), the engine as local;
* **ray CORESx1**: as many one-thread actors as cores: how Ray scales out on one machine.

At two or more ``--records`` sizes a line ``seconds = fixed + per_dialogue * n`` is fitted to each system,
which separates Ray's start-up (cluster, actors, model loads) from its cost per dialogue: the two figures
``docs/scale.md`` sizes a fleet from. Every Ray run's rows are checked against the local command's.

\b
    python bench/bench_ray.py                                        # mid model, 64 and 256 records
    python bench/bench_ray.py --model tiny --records 8,16 --repeats 1 --max-new-tokens 4   # smoke
    invoke bench-ray
Results: bench/results/bench_ray.json and .md (``--name`` changes the file names).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    RESULTS_DIR,
    WORK_DIR,
    available_sources,
    child_env,
    dialogues,
    environment,
    markdown_table,
    model_dir,
    publish,
)


def systems(cores: int) -> dict[str, list[str]]:
    """Each system's command line options beyond the shared ones, on ``cores`` cores in all."""
    return {
        "local": ["-m", "dialogsum_batch", "--threads", str(cores)],
        f"ray 1x{cores}": ["-m", "dialogsum_batch.ray", "--workers", "1", "--cpus-per-worker", str(cores)],
        f"ray {cores}x1": ["-m", "dialogsum_batch.ray", "--workers", str(cores), "--cpus-per-worker", "1"],
    }


def run_once(name: str, options: list[str], model: Path, records: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One whole process: its wall time, the job's own seconds (from --metrics-out) and its rows."""
    folder = Path(args.work_dir) / "ray-bench"
    output, metrics = folder / "out.jsonl", folder / "metrics.json"
    output.unlink(missing_ok=True)
    command = [sys.executable, options[0], options[1], str(records), *options[2:]]
    command += ["-m", str(model), "--backend", args.backend, "--num-beams", "1"]
    command += ["--max-new-tokens", str(args.max_new_tokens), "-o", str(output), "--metrics-out", str(metrics), "-q"]
    if name != "local":
        command += ["--batch-size", str(args.batch_size)] + (["--address", args.address] if args.address else [])
    env = child_env(DIALOGSUM_CACHE=str(folder / "cache"), RAY_AUTH_MODE="disabled", OMP_NUM_THREADS=None)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {
        "process_seconds": round(wall, 3),
        "job_seconds": json.loads(metrics.read_text())["seconds"],
        "rows": [(row["id"], row["summary"]) for row in rows],
    }


def measure(model: Path, records: Path, count: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every system over ``count`` records, best of ``repeats`` (interleaved rounds); rows checked."""
    best: dict[str, dict[str, Any]] = {}
    for round_ in range(args.repeats):
        for name, options in systems(args.cores).items():
            print(f"{count} records: {name}, round {round_ + 1}/{args.repeats} ...", file=sys.stderr, flush=True)
            run = run_once(name, options, model, records, args)
            if name not in best or run["process_seconds"] < best[name]["process_seconds"]:
                best[name] = run
    local = best["local"]
    return [
        {
            "system": name,
            "records": count,
            "process_seconds": run["process_seconds"],
            "job_seconds": run["job_seconds"],
            "dialogues_per_second": round(count / run["process_seconds"], 3),
            "over_local": round(run["process_seconds"] / local["process_seconds"], 3),
            "same_rows_as_local": run["rows"] == local["rows"],
        }
        for name, run in best.items()
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
            "dialogues_per_second_after_start": round(1 / slope, 3) if slope > 0 else float("inf"),
        }
    return lines


def markdown(report: dict[str, Any]) -> str:
    env = report["environment"]
    rows = [
        [
            run["system"],
            run["records"],
            run["process_seconds"],
            run["job_seconds"],
            run["dialogues_per_second"],
            f"{run['over_local']:.2f}x",
            "yes" if run["same_rows_as_local"] else "NO",
        ]
        for run in report["runs"]
    ]
    table = markdown_table(
        ["system", "records", "process s", "job s", "dialogues/s", "time / local", "rows = local"], rows
    )
    fits = markdown_table(
        ["system", "fixed s", "s / dialogue", "dialogues/s after start"],
        [
            [name, fit["fixed_seconds"], fit["seconds_per_dialogue"], fit["dialogues_per_second_after_start"]]
            for name, fit in report["fit"].items()
        ],
    )
    return "\n".join(
        [
            f"Model {report['model']} ({report['backend']}), {report['source']} records, greedy, "
            f"{report['max_new_tokens']} new tokens, Ray batches of {report['batch_size']}, best of "
            f"{report['repeats']}; {report['cores']} cores (load average {env['load_average']}), torch "
            f"{env['torch']}, ray {report['ray']}. Whole processes: Ray's start and the model loads included.",
            "",
            table,
            "",
            "Fitted over the sizes: seconds = fixed + per dialogue x records.",
            "",
            fits,
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mid", choices=["tiny", "mid", "large"], help="benchmark model (mid)")
    parser.add_argument("--backend", default="ctranslate2", choices=["transformers", "ctranslate2"], help="backend")
    parser.add_argument("--records", default="64,256", help="comma list of sizes; two or more fit a line (64,256)")
    parser.add_argument(
        "--source", default=available_sources()[-1], help="synthetic, dialogsum or a JSONL path (%(default)s)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=32, help="summary length (32)")
    parser.add_argument("--batch-size", type=int, default=64, help="rows Ray hands an actor at once (64)")
    parser.add_argument("--cores", type=int, default=len(os.sched_getaffinity(0)), help="cores each system gets")
    parser.add_argument("--address", help="run the Ray systems on this cluster instead of a local Ray each")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the best counts (2)")
    parser.add_argument("--work-dir", default=str(WORK_DIR), help="models and outputs (%(default)s)")
    parser.add_argument("--output-dir", default=str(RESULTS_DIR), help="where the JSON and Markdown go")
    parser.add_argument("--name", default="bench_ray", help="result file names (bench_ray)")
    args = parser.parse_args(argv)
    args.records = [int(size) for size in str(args.records).split(",") if size.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    import ray

    args = parse_args(argv)
    model = model_dir(args.model, Path(args.work_dir))
    folder = Path(args.work_dir) / "ray-bench"
    folder.mkdir(parents=True, exist_ok=True)
    warm_up = folder / "warm-up.jsonl"  # a CTranslate2 conversion, the page cache: paid before any timing
    warm_up.write_text("".join(json.dumps(row) + "\n" for row in dialogues(2, "synthetic", seed=2)), encoding="utf-8")
    run_once("local", systems(args.cores)["local"], model, warm_up, args)
    runs = []
    for count in args.records:
        records = folder / f"records-{count}.jsonl"
        rows = dialogues(count, args.source, seed=1)
        records.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
        runs += measure(model, records, count, args)
    report = {
        "model": args.model,
        "backend": args.backend,
        "source": args.source,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "cores": args.cores,
        "repeats": args.repeats,
        "ray": ray.__version__,
        "environment": environment(args.cores),
        "runs": runs,
        "fit": fitted(runs),
    }
    return publish(args.name, report, markdown(report), Path(args.output_dir))


if __name__ == "__main__":
    main()
