"""Dialogues per second on CPU: transformers float32 against CTranslate2 float32 and int8.

The model is a random-weight Pegasus big enough that compute dominates (d_model 512, 6+6 layers,
8 heads, FFN 2048, an 8,000-piece vocabulary), built offline with ``build_tiny_model``. Random
weights never emit ``</s>``, so every summary runs to the model's 64-token cap: each system
decodes exactly the same number of tokens. Records are synthetic chats. Each measurement runs in
its own process (two OpenMP runtimes in one process slow each other down) through the real batch
engine, after a short warm-up, and counts wall time from the first record to the last summary.

\b
    python bench/bench_backends.py --records 64
    invoke bench-backends --records 64
Results: bench/results/bench_backends.json and bench_backends.md (overwritten on each run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import chain
from pathlib import Path
from typing import Any, NoReturn

SYSTEMS = {  # name -> (backend, export quantization or None for the transformers folder)
    "transformers fp32": ("transformers", None),
    "ctranslate2 fp32": ("ctranslate2", "float32"),
    "ctranslate2 int8": ("ctranslate2", "int8"),
}
BASELINE = "transformers fp32"
TARGET_SPEEDUP = 2.5  # int8 over transformers fp32, greedy and beam alike
WARMUP_RECORDS = 4
RECORD_SEED = 1  # the model's vocabulary is trained on seed-0 chats; measure on others


@dataclass(frozen=True)
class ModelSpec:
    """The benchmark model's sizes (the issue's "big enough that compute dominates")."""

    vocab_size: int = 8000
    d_model: int = 512
    layers: int = 6
    heads: int = 8
    ffn_dim: int = 2048

    @property
    def tag(self) -> str:
        return f"pegasus-v{self.vocab_size}-d{self.d_model}-l{self.layers}-h{self.heads}-f{self.ffn_dim}"


# ---------------------------------------------------------------------------- model and exports


def pseudo_words(lines: int, seed: int = 0) -> Iterator[str]:
    """Seeded lines of made-up words: enough distinct text for an 8,000-piece vocabulary."""
    rng = random.Random(seed)
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["th", "sh", "ch", "ou", "ea", "ing", "er"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(20000)]
    for _ in range(lines):
        yield " ".join(rng.choice(words) for _ in range(12))


def build_model(work: Path, spec: ModelSpec) -> Path:
    """The benchmark Pegasus, built once and kept in the work folder."""
    from dialogsum_batch.fixtures.tiny import build_tiny_model, default_texts

    folder = work / spec.tag
    if (folder / "model.safetensors").is_file():
        return folder
    texts = chain(default_texts(), pseudo_words(20000))
    return build_tiny_model(
        folder,
        seed=0,
        texts=texts,
        vocab_size=spec.vocab_size,
        d_model=spec.d_model,
        layers=spec.layers,
        heads=spec.heads,
        ffn_dim=spec.ffn_dim,
    )


def export_once(model: Path, quantization: str) -> Path:
    """The CTranslate2 export beside the model, made once."""
    from dialogsum_batch.export import ExportSettings, export_model

    out = model.parent / f"{model.name}-ct2-{quantization}"
    if (out / "model.bin").is_file():
        return out
    return export_model(ExportSettings(str(model), str(out), "ctranslate2", quantization))


# ---------------------------------------------------------------------------- one measurement


def synthetic_records(count: int, offset: int = 0) -> list[Any]:
    from dialogsum_batch.fixtures.synthetic import generate
    from dialogsum_batch.inference.records import Record

    rows = list(generate(offset + count, seed=RECORD_SEED))[offset:]
    return [Record(i, row["id"], row["dialogue"]) for i, row in enumerate(rows)]


def measure(path: str, backend: str, beams: int, records: int, threads: int, repeats: int = 1) -> dict[str, Any]:
    """Load, warm up, then time the batch engine over ``records`` synthetic dialogues (best of ``repeats``).

    Wall time is what a job sees; process CPU time (all threads) barely moves when other jobs share
    the cores, so dialogues per CPU-second is the steadier figure on a busy machine.
    """
    from dialogsum_batch.backends import load_backend
    from dialogsum_batch.config import DecodeSettings, ModelSettings, RunSettings
    from dialogsum_batch.inference.engine import Engine

    model = ModelSettings(name=path, backend=backend, device="cpu", threads=threads)
    settings = RunSettings(model=model, decode=DecodeSettings(num_beams=beams))
    loaded = load_backend(model, settings.decode)

    def run(rows: list) -> dict[str, int]:
        engine = Engine(loaded, settings.batch)
        outcomes = [o if o.error is None else fail(o.error) for o in engine.run(rows)]
        return {
            "records": len(outcomes),
            "generated_tokens": sum(o.tokens for o in outcomes),
            "real_tokens": engine.counts.real_tokens,
            "batches": engine.counts.batches,
        }

    run(synthetic_records(WARMUP_RECORDS, offset=records))
    rows = synthetic_records(records)
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        stats = run(rows)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    seconds, cpu_seconds = min(walls), min(cpus)
    return {
        "records": stats["records"],
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu_seconds, 3),
        "dialogues_per_s": round(stats["records"] / seconds, 3),
        "dialogues_per_cpu_s": round(stats["records"] / cpu_seconds, 3),
        "generated_tokens_per_s": round(stats["generated_tokens"] / seconds, 1),
        "source_tokens_mean": round(stats["real_tokens"] / max(stats["records"], 1), 1),
        "batches": stats["batches"],
        "describe": loaded.describe(),
    }


def fail(error: Exception) -> NoReturn:
    raise error


def measure_in_subprocess(path: Path, backend: str, beams: int, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        __file__,
        "--measure",
        str(path),
        "--backend",
        backend,
        "--beams",
        str(beams),
        "--records",
        str(args.records),
        "--threads",
        str(args.threads),
        "--repeats",
        str(args.repeats),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"measurement failed ({' '.join(command)}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------- the whole benchmark


def wait_for_load(max_load: float | None, patience_s: float = 600.0) -> None:
    """Wait (up to ``patience_s``) until the 1-minute load average drops below ``max_load``."""
    deadline = time.monotonic() + patience_s
    while max_load is not None and os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        print(f"load {os.getloadavg()[0]:.2f} >= {max_load}; waiting", file=sys.stderr, flush=True)
        time.sleep(15)


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(threads: int) -> dict[str, Any]:
    import ctranslate2
    import torch
    import transformers

    return {
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "threads": threads or len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "ctranslate2": ctranslate2.__version__,
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    """Every system at every beam size; speedups against transformers float32."""
    spec = ModelSpec()
    work = Path(args.work_dir)
    model = build_model(work, spec)
    paths = {name: (export_once(model, q) if q else model) for name, (_, q) in SYSTEMS.items()}
    env = environment(args.threads)
    rows = []
    for beams in args.beams:
        for name, (backend, _) in SYSTEMS.items():
            print(f"{name}, {beams} beam(s), {args.records} records ...", file=sys.stderr, flush=True)
            result = measure_in_subprocess(paths[name], backend, beams, args)
            rows.append({"system": name, "beams": beams, **result})
    for row in rows:
        base = next(r for r in rows if r["system"] == BASELINE and r["beams"] == row["beams"])
        row["speedup"] = round(row["dialogues_per_s"] / base["dialogues_per_s"], 2)
        row["speedup_cpu"] = round(row["dialogues_per_cpu_s"] / base["dialogues_per_cpu_s"], 2)
    env["load_after"] = [round(x, 2) for x in os.getloadavg()]
    sizes = {
        name: round(sum(f.stat().st_size for f in p.iterdir() if f.suffix in (".bin", ".safetensors")) / 2**20, 1)
        for name, p in paths.items()
    }
    return {
        "model": {**asdict(spec), "tag": spec.tag, "weights_mib": sizes, "max_new_tokens": 64},
        "records": args.records,
        "repeats": args.repeats,
        "record_seed": RECORD_SEED,
        "environment": env,
        "results": rows,
        "target": {"int8_over_transformers_fp32": TARGET_SPEEDUP},
    }


def markdown(report: dict[str, Any]) -> str:
    """The results table, with what ran and how loaded the machine was."""
    env, spec = report["environment"], report["model"]
    lines = [
        f"Random Pegasus d_model {spec['d_model']}, {spec['layers']}+{spec['layers']} layers, {spec['heads']} heads, "
        f"FFN {spec['ffn_dim']}, vocab {spec['vocab_size']}; {report['records']} synthetic dialogues, "
        f"{spec['max_new_tokens']} new tokens each; CPU {env['cpu']}, {env['threads']} thread(s) per system; "
        f"load average {env['load_before'][0]} before, {env['load_after'][0]} after; "
        f"torch {env['torch']}, ctranslate2 {env['ctranslate2']}.",
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
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=64, help="synthetic dialogues per measurement (default 64)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for both backends; 0 = every core")
    parser.add_argument("--beams", default="1,4", help="comma list of beam sizes (default 1,4)")
    parser.add_argument("--output-dir", default="bench/results", help="where the JSON and Markdown go")
    parser.add_argument(
        "--work-dir",
        default=str(Path(tempfile.gettempdir()) / "dialogsum-bench"),
        help="where the model and its exports are kept between runs (default: %(default)s)",
    )
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per measurement; the best counts")
    parser.add_argument("--max-load", type=float, help="first wait until the 1-minute load average is below this")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one measurement of this model folder
    parser.add_argument("--backend", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.beams = [int(b) for b in str(args.beams).split(",") if b.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.backend, args.beams[0], args.records, args.threads, args.repeats)))
        return 0
    wait_for_load(args.max_load)
    report = run_all(args)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_backends.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table = markdown(report)
    (out / "bench_backends.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
