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
  on held-out synthetic chats, with the tiny Pegasus fine-tuned by ``dialogsum-batch finetune --preset smoke``
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
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from common import dialogues, markdown_table, model_dir, read_records, write_records

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
    folder = work(args) / "runs"
    output, metrics = folder / f"{tag}.jsonl", folder / f"{tag}.metrics.json"
    folder.mkdir(parents=True, exist_ok=True)
    command = harness.summarize_command(
        [records],
        model,
        output=output,
        metrics=metrics,
        threads=args.threads if threads is None else threads,
        beams=beams,
        max_new_tokens=args.max_new_tokens,
        options=["--backend", backend, *(["--quantization", quantization] if quantization else [])],
    )
    done = harness.run_process(command, harness.command_env(args.work_dir))
    report = json.loads(metrics.read_text())
    rows = read_records(output)
    return {
        "system": system,
        "beams": beams,
        "records": report["records"],
        "process_seconds": round(done.seconds, 3),
        "peak_mib": done.peak_mib,
        "engine_seconds": report["seconds"],
        "dialogues_per_s": report["dialogues_per_second"],
        "process_dialogues_per_s": round(report["records"] / done.seconds, 3),
        "threads": report["model"].get("threads"),
        "dtype": report["model"].get("dtype"),
        "rouge1": (report.get("rouge") or {}).get("rouge1"),
        "summaries": [row["summary"] for row in rows],
        "log": done.stderr,
    }


def work(args: argparse.Namespace) -> Path:
    return Path(args.work_dir) / "ct2-cache-bench"


def first_runs(
    systems: Sequence[str], threads: Any, work_dir: Path, run: Callable[[str, str], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each system on an emptied conversion cache (it converts), then again (a cache hit): the conversion's
    own seconds (from its log line), both processes' seconds and peak memory. ``run(system, tag)`` runs one."""
    harness.clear_conversions(work_dir)
    rows = []
    for system in systems:
        first, again = run(system, "convert"), run(system, "cached")
        match = CONVERTED.search(first["log"])
        if not match or "from the CTranslate2 cache" not in again["log"]:
            raise SystemExit(f"expected a conversion, then a cache hit:\n{first['log']}\n{again['log']}")
        rows.append(
            {
                "system": system,
                "threads": threads,
                "convert_seconds": float(match.group(1)),
                "first_process_seconds": first["process_seconds"],
                "cached_process_seconds": again["process_seconds"],
                "first_peak_mib": first["peak_mib"],
                "cached_peak_mib": again["peak_mib"],
            }
        )
    return rows


def first_runs_table(rows: list[dict[str, Any]]) -> str:
    """``first_runs`` as Markdown."""
    keys = ["system", "threads", "convert_seconds", "first_process_seconds", "cached_process_seconds"]
    headers = ["system", "threads", "conversion s", "first process s", "cached process s"]
    keys += ["first_peak_mib", "cached_peak_mib"]
    headers += ["first peak MiB", "cached peak MiB"]
    return markdown_table(headers, [[row[key] for key in keys] for row in rows])


# ---------------------------------------------------------------------------- the three measurements


def measure_conversion(model: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """First run on an empty cache (converts), then a second (cache hit), per quantization; 2 records each."""
    records = write_records(work(args) / "two.jsonl", dialogues(2, args.source, seed=1))
    return first_runs(
        ["ctranslate2 fp32", "ctranslate2 int8"],
        args.threads,
        args.work_dir,
        lambda system, tag: run_cli(model, records, system, 1, args, f"{tag}-{system.split()[1]}"),
    )


def measure_speed(model: Path, args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[int, float]]:
    """Best of ``repeats`` rounds per system and beam size; the fp32 identical-summary share per beam size."""
    records = write_records(work(args) / "records.jsonl", dialogues(args.records, args.source, seed=1))
    rows, identical = [], {}
    for beams in args.beams:
        best = best_systems(model, records, beams, args)
        rows += [with_speedup(run, best[BASELINE]) for run in best.values()]
        identical[beams] = harness.same_share(best["ctranslate2 fp32"]["summaries"], best[BASELINE]["summaries"])
    return rows, identical


def best_systems(model: Path, records: Path, beams: int, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Every system at ``beams`` in rounds; the fastest run of each."""
    runs = harness.rounds(
        SYSTEMS,
        args.repeats,
        lambda system: run_cli(model, records, system, beams, args, f"speed-{system.split()[1]}-{beams}"),
        label=lambda system: f"{system}, {beams} beam(s)",
    )
    return {system: harness.fastest(tried, "engine_seconds") for system, tried in runs.items()}


def measure_quality(args: argparse.Namespace) -> dict[str, Any]:
    """ROUGE-1 of every system on the trained tiny model, held-out chats, greedy (one thread: a small model)."""
    model = trained_model(args)
    rows = dialogues(args.trained_records, "synthetic", seed=HELD_OUT_SEED)
    records = write_records(work(args) / "held-out.jsonl", rows)
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
        "fp32_identical": harness.same_share(runs["ctranslate2 fp32"]["summaries"], runs[BASELINE]["summaries"]),
        "int8_identical": harness.same_share(runs["ctranslate2 int8"]["summaries"], runs[BASELINE]["summaries"]),
    }


def trained_model(args: argparse.Namespace) -> Path:
    """``--trained``, else the smoke fine-tune kept in the work folder (``dialogsum-batch finetune --preset smoke``)."""
    if args.trained:
        return Path(args.trained)
    folder = Path(args.work_dir) / "smoke-finetuned"
    if not (folder / "model.safetensors").is_file():
        print(f"fine-tuning the tiny model once into {folder} (about a minute) ...", file=sys.stderr, flush=True)
        command = ["-m", "dialogsum_batch", "finetune", "--preset", "smoke", "--output-dir", str(folder)]
        harness.run_process(command, harness.command_env(args.work_dir))
    return folder


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
    quality, targets = report["quality"], report["targets"]
    conversion = first_runs_table(report["conversion"])
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
            f"Model {report['model']} ({report['source']} records: {report['records']}), max_new_tokens "
            f"{report['max_new_tokens']}, --threads {report['threads']}, best of {report['repeats']}.",
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
    model = model_dir(args.model, args.work_dir)
    conversion = measure_conversion(model, args)
    speed, identical = measure_speed(model, args)
    quality = measure_quality(args)
    return {
        "conversion": conversion,
        "speed": speed,
        "identical": identical,
        "quality": quality,
        "targets": verdict(speed, identical),
    }


def add_quality(parser: argparse.ArgumentParser) -> None:
    """``--trained`` and ``--trained-records``: the model and chats of the int8 quality figures."""
    parser.add_argument("--trained", help="a trained transformers model for the quality figures [default: smoke]")
    parser.add_argument("--trained-records", type=int, default=200, help="held-out chats for quality (%(default)s)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = harness.arguments(
        __doc__, __file__, model="mid", records=96, beams="1,4", repeats=3, name="bench_ct2_cache"
    )
    add_quality(parser)
    return harness.parse(parser, argv)


main = harness.benchmark_main(parse_args, run_all, markdown)


if __name__ == "__main__":
    main()
