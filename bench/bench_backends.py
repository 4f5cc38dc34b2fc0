"""Dialogues per second on CPU: transformers float32 against CTranslate2 float32 and int8.

The model is a random-weight Pegasus big enough that compute dominates (``--model mid``: d_model 512,
6+6 layers, 8 heads, FFN 2048, an 8,192-piece vocabulary; common.MODELS), with CTranslate2 exports of
the same weights beside it. Random weights never emit ``</s>``, so every summary runs to the summary
length (the model's 64 tokens unless ``--max-new-tokens``): each system decodes exactly the same number
of tokens. Records are synthetic chats. Each measurement runs in its own process (two OpenMP runtimes in
one process slow each other down) through the command's batch engine, after a short warm-up, and counts
wall time from the first record to the last summary; the systems run in rounds, the best of ``--repeats``.

\b
    python bench/bench_backends.py --records 64
    invoke bench-backends --records 64
Results: bench/results/bench_backends.json and bench_backends.md (``--name`` changes the file names).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
from common import MODELS, ct2_export, dialogues, model_dir

SYSTEMS = {  # name -> (backend, export quantization or None for the transformers folder)
    "transformers fp32": ("transformers", None),
    "ctranslate2 fp32": ("ctranslate2", "float32"),
    "ctranslate2 int8": ("ctranslate2", "int8"),
}
BASELINE = "transformers fp32"
TARGET_SPEEDUP = 2.5  # int8 over transformers fp32, greedy and beam alike
WARMUP_RECORDS = 4
RECORD_SEED = 1  # the model's vocabulary is trained on seed-0 chats; measure on others


# ---------------------------------------------------------------------------- one measurement (a child process)


def measure(path: str, backend: str, beams: int, args: argparse.Namespace) -> dict[str, Any]:
    """Load, warm up, then time the command's batch engine over ``records`` synthetic dialogues.

    Wall time is what a job sees; process CPU time (all threads) barely moves when other jobs share
    the cores, so dialogues per CPU-second is the steadier figure on a busy machine.
    """
    from dialogsum_batch.inference.summarizer import Summarizer

    options = {"device": "cpu", "threads": args.threads, "num_beams": beams, "max_new_tokens": args.max_new_tokens}
    summarizer = Summarizer(path, backend, **options)
    texts = [row["dialogue"] for row in dialogues(WARMUP_RECORDS + args.records, args.source, seed=RECORD_SEED)]
    run(summarizer, texts[args.records :])
    wall, cpu = time.perf_counter(), time.process_time()
    stats = run(summarizer, texts[: args.records])
    seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "records": stats["records"],
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "generated_tokens": stats["generated_tokens"],
        "source_tokens_mean": round(stats["real_tokens"] / max(stats["records"], 1), 1),
        "batches": stats["batches"],
        "describe": summarizer.backend.describe(),
    }


def run(summarizer: Any, texts: list[str]) -> dict[str, int]:
    """The engine over ``texts``; its counts. A record that fails ends the measurement."""
    engine = summarizer.engine()
    outcomes = list(engine.run(harness.records(texts)))
    failed = next((o.error for o in outcomes if o.error is not None), None)
    if failed is not None:
        raise failed
    return {
        "records": len(outcomes),
        "generated_tokens": sum(o.tokens for o in outcomes),
        "real_tokens": engine.counts.real_tokens,
        "batches": engine.counts.batches,
    }


def measure_in_process(path: Path, backend: str, beams: int, args: argparse.Namespace) -> dict[str, Any]:
    """``measure`` in a fresh process of this script."""
    command = [__file__, "--measure", str(path), "--backend", backend, "--beams", str(beams)]
    command += ["--records", str(args.records), "--source", args.source, "--threads", str(args.threads)]
    command += ["--max-new-tokens", str(args.max_new_tokens)] if args.max_new_tokens else []
    return json.loads(harness.run_process(command).stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- the whole benchmark


def best_of(paths: dict[str, Path], beams: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every system at ``beams`` in rounds: the best wall and CPU time of each, with speedups."""
    runs = harness.rounds(
        SYSTEMS,
        args.repeats,
        lambda name: measure_in_process(paths[name], SYSTEMS[name][0], beams, args),
        label=lambda name: f"{name}, {beams} beam(s), {args.records} records",
    )
    rows = []
    for name, tried in runs.items():
        best = harness.fastest(tried)
        seconds, cpu_seconds = best["seconds"], min(run["cpu_seconds"] for run in tried)
        rows.append(
            {
                "system": name,
                "beams": beams,
                **best,
                "cpu_seconds": cpu_seconds,
                "dialogues_per_s": round(best["records"] / seconds, 3),
                "dialogues_per_cpu_s": round(best["records"] / cpu_seconds, 3),
                "generated_tokens_per_s": round(best["generated_tokens"] / seconds, 1),
            }
        )
    base = next(row for row in rows if row["system"] == BASELINE)
    for row in rows:
        row["speedup"] = round(row["dialogues_per_s"] / base["dialogues_per_s"], 2)
        row["speedup_cpu"] = round(row["dialogues_per_cpu_s"] / base["dialogues_per_cpu_s"], 2)
    return rows


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Every system at every beam size; speedups against transformers float32."""
    model = model_dir(args.model, args.work_dir)
    paths = {name: (ct2_export(model, q) if q else model) for name, (_, q) in SYSTEMS.items()}
    rows = [row for beams in args.beams for row in best_of(paths, beams, args)]
    sizes = {
        name: round(sum(f.stat().st_size for f in p.iterdir() if f.suffix in (".bin", ".safetensors")) / 2**20, 1)
        for name, p in paths.items()
    }
    return {
        "model": {**asdict(MODELS[args.model]), "weights_mib": sizes},
        "tokens_per_summary": round(rows[0]["generated_tokens"] / max(rows[0]["records"], 1), 1),
        "record_seed": RECORD_SEED,
        "results": rows,
        "target": {"int8_over_transformers_fp32": TARGET_SPEEDUP},
    }


def markdown(report: dict[str, Any]) -> str:
    """The results table, with what ran."""
    spec = report["model"]
    lines = [
        f"Random Pegasus d_model {spec['d_model']}, {spec['layers']}+{spec['layers']} layers, {spec['heads']} heads, "
        f"FFN {spec['ffn_dim']}, vocab {spec['vocab_size']}; {report['records']} {report['source']} dialogues "
        f"({report['results'][0]['source_tokens_mean']} source tokens on average), "
        f"{report['tokens_per_summary']} new tokens each (max_new_tokens: {report['max_new_tokens'] or 'the model'}); "
        f"best of {report['repeats']} rounds.",
        "",
        "| system | beams | dialogues/s | speedup | dialogues/CPU-s | speedup (CPU) | weights MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        lines.append(
            f"| {row['system']} | {row['beams']} | {row['dialogues_per_s']:.2f} | {row['speedup']:.2f}x | "
            f"{row['dialogues_per_cpu_s']:.2f} | {row['speedup_cpu']:.2f}x | "
            f"{spec['weights_mib'][row['system']]} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = harness.arguments(
        __doc__, __file__, model="mid", records=64, source="synthetic", beams="1,4", repeats=1, name="bench_backends"
    )
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one measurement of this model folder
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    return harness.parse(parser, argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.backend, args.beams[0], args)))
        return 0
    harness.benchmark_main(parse_args, run_all, markdown)(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
