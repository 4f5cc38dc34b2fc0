"""CTranslate2 through the conversion cache against the transformers backend, in whole processes.

Every figure comes from a fresh ``python -m dialogsum_batch`` process, as a cron job would start it,
on the same records file, with the same ``--threads`` and decoding (``--max-new-tokens``, greedy and
4 beams):

* **conversion**: the first ``--backend ctranslate2`` run on an empty cache converts the mid-size
  model (time from its own log line, and the whole process), the second is a cache hit;
* **dialogues/s** of transformers fp32, CTranslate2 fp32 and CTranslate2 int8 through the cache:
  the engine's own figure (``--metrics-out``) and the whole process's (load included); the systems
  run in rounds so that load bursts hit them alike, and the best of ``--repeats`` rounds counts;
* **agreement**: the share of identical fp32 greedy summaries, CTranslate2 against transformers;
* **int8 quality on a trained model**: ROUGE-1 of transformers fp32 and CTranslate2 int8 (and fp32)
  on held-out synthetic chats, with the tiny Pegasus fine-tuned by ``invoke finetune --preset smoke``
  (made once into the work folder, or ``--trained DIR``): random weights score near zero whatever runs them.

Targets (issue 15): int8 >= 2x transformers fp32 greedy; fp32 greedy summaries identical on >= 99%.

\b
    python bench/bench_ct2_cache.py                      # mid model, 96 records, best of 3 (about 15 min)
    python bench/bench_ct2_cache.py --records 8 --repeats 1 --trained-records 20 --max-new-tokens 8   # smoke
    invoke bench-ct2-cache
Results: bench/results/bench_ct2_cache.json and .md (``--name`` changes the file names).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    REPO,
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

SYSTEMS = {  # name -> (backend, quantization)
    "transformers fp32": ("transformers", None),
    "ctranslate2 fp32": ("ctranslate2", "float32"),
    "ctranslate2 int8": ("ctranslate2", "int8"),
}
BASELINE = "transformers fp32"
TARGET_INT8_SPEEDUP = 2.0  # greedy, over transformers fp32
TARGET_IDENTICAL = 0.99  # fp32 greedy summaries equal to transformers'
HELD_OUT_SEED = 4242  # chats the smoke fine-tune never saw (as tests/test_ctranslate2.py)
CONVERTED = re.compile(r"into the cache in ([0-9.]+) s")


# ---------------------------------------------------------------------------- one process


def run_cli(
    model: Path, records: Path, system: str, beams: int, args: argparse.Namespace, tag: str, threads: int | None = None
) -> dict[str, Any]:
    """One ``dialogsum-batch`` process; its wall time, the engine's figures and the summaries."""
    backend, quantization = SYSTEMS[system]
    folder = Path(args.work_dir) / "ct2-cache-bench" / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    output, metrics = folder / f"{tag}.jsonl", folder / f"{tag}.metrics.json"
    command = [
        sys.executable,
        "-m",
        "dialogsum_batch",
        str(records),
        "-m",
        str(model),
        "--backend",
        backend,
        "--threads",
        str(threads or args.threads),
        "--num-beams",
        str(beams),
        "--max-new-tokens",
        str(args.max_new_tokens),
        "-o",
        str(output),
        "--metrics-out",
        str(metrics),
    ]
    command += ["--quantization", quantization] if quantization else []
    started = time.perf_counter()
    done = subprocess.run(
        command, env=child_env(DIALOGSUM_CACHE=str(cache_dir(args))), capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    report = json.loads(metrics.read_text())
    rows = [json.loads(line) for line in output.read_text().splitlines() if line.strip()]
    return {
        "system": system,
        "beams": beams,
        "records": report["records"],
        "process_seconds": round(wall, 3),
        "engine_seconds": report["seconds"],
        "dialogues_per_s": report["dialogues_per_second"],
        "process_dialogues_per_s": round(report["records"] / wall, 3),
        "threads": report["model"].get("threads"),
        "dtype": report["model"].get("dtype"),
        "rouge1": (report.get("rouge") or {}).get("rouge1"),
        "summaries": [row["summary"] for row in rows],
        "log": done.stderr,
    }


def cache_dir(args: argparse.Namespace) -> Path:
    return Path(args.work_dir) / "ct2-cache-bench" / "cache"


def write_records(path: Path, rows: Sequence[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- the three measurements


def measure_conversion(model: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """First run on an empty cache (converts), then a second (cache hit), per quantization; 2 records each."""
    from dialogsum_batch.backends.ct2_cache import clear_entries

    os.environ["DIALOGSUM_CACHE"] = str(cache_dir(args))  # clear_entries reads the root from the environment too
    clear_entries(cache_dir(args) / "ctranslate2")
    records = write_records(Path(args.work_dir) / "ct2-cache-bench" / "two.jsonl", dialogues(2, args.source, seed=1))
    rows = []
    for system in ("ctranslate2 fp32", "ctranslate2 int8"):
        first = run_cli(model, records, system, 1, args, f"convert-{system.split()[1]}")
        again = run_cli(model, records, system, 1, args, f"cached-{system.split()[1]}")
        match = CONVERTED.search(first["log"])
        if not match or "from the CTranslate2 cache" not in again["log"]:
            raise SystemExit(f"expected a conversion, then a cache hit:\n{first['log']}\n{again['log']}")
        rows.append(
            {
                "system": system,
                "convert_seconds": float(match.group(1)),
                "first_process_seconds": first["process_seconds"],
                "cached_process_seconds": again["process_seconds"],
            }
        )
    return rows


def measure_speed(model: Path, args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[int, float]]:
    """Best of ``repeats`` rounds per system and beam size; the fp32 identical-summary share per beam size."""
    records = write_records(
        Path(args.work_dir) / "ct2-cache-bench" / "records.jsonl", dialogues(args.records, args.source, seed=1)
    )
    best: dict[tuple[str, int], dict[str, Any]] = {}
    for beams in args.beams:
        for round_ in range(args.repeats):
            for system in SYSTEMS:
                print(f"{system}, {beams} beam(s), round {round_ + 1}/{args.repeats} ...", file=sys.stderr, flush=True)
                run = run_cli(model, records, system, beams, args, f"speed-{system.split()[1]}-{beams}")
                kept = best.get((system, beams))
                if kept is None or run["dialogues_per_s"] > kept["dialogues_per_s"]:
                    best[(system, beams)] = run
    identical = {beams: same_share(best[("ctranslate2 fp32", beams)], best[(BASELINE, beams)]) for beams in args.beams}
    return [with_speedup(run, best[(BASELINE, run["beams"])]) for run in best.values()], identical


def measure_quality(args: argparse.Namespace) -> dict[str, Any]:
    """ROUGE-1 of every system on the trained tiny model, held-out chats, greedy (one thread: a small model)."""
    model = trained_model(args)
    rows = [
        {"id": r["id"], "dialogue": r["dialogue"], "summary": r["summary"]}
        for r in dialogues(args.trained_records, "synthetic", seed=HELD_OUT_SEED)
    ]
    records = write_records(Path(args.work_dir) / "ct2-cache-bench" / "held-out.jsonl", rows)
    runs = {
        system: run_cli(model, records, system, 1, args, f"quality-{system.split()[1]}", threads=1)
        for system in SYSTEMS
    }
    base = runs[BASELINE]["rouge1"]
    return {
        "model": str(model),
        "records": len(rows),
        "rouge1": {system: run["rouge1"] for system, run in runs.items()},
        "int8_rouge1_difference": round(runs["ctranslate2 int8"]["rouge1"] - base, 3),
        "fp32_identical": same_share(runs["ctranslate2 fp32"], runs[BASELINE]),
        "int8_identical": same_share(runs["ctranslate2 int8"], runs[BASELINE]),
    }


def trained_model(args: argparse.Namespace) -> Path:
    """``--trained``, else the smoke fine-tune kept in the work folder (``invoke finetune --preset smoke`` once)."""
    if args.trained:
        return Path(args.trained)
    folder = Path(args.work_dir) / "smoke-finetuned"
    if not (folder / "model.safetensors").is_file():
        print(f"fine-tuning the tiny model once into {folder} (about a minute) ...", file=sys.stderr, flush=True)
        command = [sys.executable, "-m", "invoke", "finetune", "--preset", "smoke", "--output-dir", str(folder)]
        subprocess.run(
            command, cwd=REPO, env=child_env(DIALOGSUM_CACHE=str(cache_dir(args))), check=True, capture_output=True
        )
    return folder


def same_share(run: dict[str, Any], base: dict[str, Any]) -> float:
    pairs = list(zip(run["summaries"], base["summaries"]))
    return round(sum(a == b for a, b in pairs) / max(len(pairs), 1), 4)


def with_speedup(run: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The run without its summaries and log, with its speedups over the baseline at the same beam size."""
    kept = {key: value for key, value in run.items() if key not in ("summaries", "log")}
    kept["speedup"] = round(run["dialogues_per_s"] / base["dialogues_per_s"], 2)
    kept["process_speedup"] = round(run["process_dialogues_per_s"] / base["process_dialogues_per_s"], 2)
    return kept


# ---------------------------------------------------------------------------- report


def verdict(speed: list[dict[str, Any]], identical: dict[int, float]) -> dict[str, Any]:
    int8 = next((r["speedup"] for r in speed if r["system"] == "ctranslate2 int8" and r["beams"] == 1), None)
    return {
        "int8_greedy_speedup": int8,
        "int8_target": TARGET_INT8_SPEEDUP,
        "int8_pass": int8 is not None and int8 >= TARGET_INT8_SPEEDUP,
        "fp32_greedy_identical": identical.get(1),
        "identical_target": TARGET_IDENTICAL,
        "identical_pass": identical.get(1) is not None and identical[1] >= TARGET_IDENTICAL,
    }


def markdown(report: dict[str, Any]) -> str:
    env, quality, targets = report["environment"], report["quality"], report["targets"]
    conversion = markdown_table(
        ["system", "conversion s", "first process s", "cached process s"],
        [
            [r["system"], r["convert_seconds"], r["first_process_seconds"], r["cached_process_seconds"]]
            for r in report["conversion"]
        ],
    )
    speed = markdown_table(
        ["system", "beams", "threads", "dialogues/s", "speedup", "process dialogues/s", "process speedup"],
        [
            [
                r["system"],
                r["beams"],
                r["threads"],
                r["dialogues_per_s"],
                f"{r['speedup']:.2f}x",
                r["process_dialogues_per_s"],
                f"{r['process_speedup']:.2f}x",
            ]
            for r in report["speed"]
        ],
    )
    rouge = ", ".join(f"{name} {value:.2f}" for name, value in quality["rouge1"].items())
    return "\n".join(
        [
            f"Model {report['model']} ({report['source']} records: {report['records']}), "
            f"{report['max_new_tokens']} new tokens, best of {report['repeats']}; CPU {env['cpu']}, "
            f"load average {env['load_average']} before, "
            f"{report['load_after']} after; torch {env['torch']}, ctranslate2 {env['ctranslate2']}.",
            "",
            "Conversion into the cache (2 records per process):",
            "",
            conversion,
            "",
            "Throughput, whole processes, same records and threads:",
            "",
            speed,
            "",
            "fp32 summaries identical to transformers' (share of records): "
            + ", ".join(f"{beams} beam(s) {share:.3f}" for beams, share in report["identical"].items())
            + ".",
            "",
            f"Trained model ({quality['records']} held-out chats, greedy): ROUGE-1 {rouge}; int8 - transformers "
            f"{quality['int8_rouge1_difference']:+.2f}; identical fp32 {quality['fp32_identical']}, "
            f"int8 {quality['int8_identical']}.",
            "",
            f"Targets: int8 greedy {targets['int8_greedy_speedup']}x (>= {targets['int8_target']}x: "
            f"{'PASS' if targets['int8_pass'] else 'FAIL'}); fp32 greedy identical {targets['fp32_greedy_identical']} "
            f"(>= {targets['identical_target']}: {'PASS' if targets['identical_pass'] else 'FAIL'}).",
        ]
    )


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    import ctranslate2
    from bench_backends import cpu_name

    model = model_dir(args.model, Path(args.work_dir))
    env = {**environment(args.threads), "cpu": cpu_name(), "ctranslate2": ctranslate2.__version__}
    conversion = measure_conversion(model, args)
    speed, identical = measure_speed(model, args)
    quality = measure_quality(args)
    return {
        "model": args.model,
        "source": args.source,
        "records": args.records,
        "repeats": args.repeats,
        "threads": args.threads,
        "max_new_tokens": args.max_new_tokens,
        "environment": env,
        "conversion": conversion,
        "speed": speed,
        "identical": identical,
        "quality": quality,
        "targets": verdict(speed, identical),
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mid", choices=["tiny", "mid", "large"], help="benchmark model (mid)")
    parser.add_argument("--records", type=int, default=96, help="records per speed measurement (96)")
    parser.add_argument(
        "--source",
        default=available_sources()[-1],
        help="synthetic, dialogsum (../shared/data, real lengths) or a JSONL path (%(default)s)",
    )
    parser.add_argument("--beams", default="1,4", help="comma list of beam sizes (1,4)")
    parser.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="threads for every system (%(default)s: every usable core)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="rounds of all systems; the best counts (3)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="summary length (32)")
    parser.add_argument("--trained", help="a trained transformers model for the quality figures [default: smoke]")
    parser.add_argument("--trained-records", type=int, default=200, help="held-out chats for quality (200)")
    parser.add_argument("--work-dir", default=str(WORK_DIR), help="models, cache and outputs (%(default)s)")
    parser.add_argument("--output-dir", default=str(RESULTS_DIR), help="where the JSON and Markdown go")
    parser.add_argument("--name", default="bench_ct2_cache", help="result file names (bench_ct2_cache)")
    args = parser.parse_args(argv)
    args.beams = [int(b) for b in str(args.beams).split(",") if b.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    report = run_all(args)
    return publish(args.name, report, markdown(report), Path(args.output_dir))


if __name__ == "__main__":
    main()
