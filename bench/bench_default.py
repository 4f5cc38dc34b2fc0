"""The default command against the idiomatic fixed-8 transformers loop, in whole processes, at equal threads.

What a user gets from ``dialogsum-batch chats.jsonl -m MODEL`` with no backend flag (CTranslate2 float32
through the conversion cache on a CPU), and with ``--fast`` (int8), against what they would otherwise
write: a Python script that imports transformers, loads the model and calls ``generate`` on fixed
batches of 8 in arrival order (``bench_pytorch_path.fixed_8``). Every figure is a fresh process, as a
cron job starts it, on the same records with the same ``--threads`` (OMP_NUM_THREADS too); the systems run
in rounds, so that load bursts hit them alike, and the best of ``--repeats`` counts:

* **seconds** and **speedup** over the fixed-8 loop at the same thread count (import and load included);
* **peak memory**: each process's own peak RSS (VmHWM, read by the process as it exits), MiB;
* **identical**: the share of greedy summaries equal to ``--backend transformers`` (transformers fp32
  through the engine) and to the fixed-8 loop;
* **first run**: the default and ``--fast`` on an emptied cache, converting (the conversion's own time from
  its log line, and the whole process), beside the cached process;
* **int8 quality**: ROUGE-1 of transformers fp32, the default and int8 on held-out chats with the trained
  tiny Pegasus (``bench_ct2_cache.measure_quality``; ``--no-quality`` skips it).

Records carry no reference in the timed runs (neither does the loop compute ROUGE). Targets (issue 23): the
default >= 2.2x the loop at 1 and 2 threads, greedy identical to transformers fp32 on >= 99%; int8 >= 3x.

\b
    python bench/bench_default.py --model mid --records 160 --source dialogsum --threads 1,2 --repeats 3
    python bench/bench_default.py --model tiny --records 8 --threads 1 --repeats 1 --no-quality   # smoke
Results: bench/results/bench_default.json and .md (``--name`` changes the file names).
"""

from __future__ import annotations

import argparse
import json
import re
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
    load_average,
    markdown_table,
    model_dir,
    publish,
)

LOOP = "fixed-8 loop"
SYSTEMS = {  # name -> extra CLI arguments (None: the loop, a script of its own)
    LOOP: None,
    "transformers fp32": ["--backend", "transformers"],
    "default": [],
    "--fast": ["--fast"],
}
TARGET_DEFAULT = 2.2  # default over the loop, at every thread count
TARGET_FAST = 3.0  # --fast over the loop
TARGET_IDENTICAL = 0.99  # default greedy summaries equal to transformers fp32's
CONVERTED = re.compile(r"into the cache in ([0-9.]+) s")
# Peak memory is read by the measured process itself, at exit: a child's ru_maxrss (wait4) starts from its
# parent's at fork, and this parent holds torch (~500 MiB), which would hide every figure below that.
PEAK_HOOK = """
import atexit, os, resource, sys
def _write_peak():
    kib = None
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                kib = int(line.split()[1])
    except OSError:
        pass
    if kib is None:  # not Linux: ru_maxrss (bytes on macOS)
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // (1024 if sys.platform == "darwin" else 1)
    with open(os.environ["BENCH_PEAK_FILE"], "w") as out:
        out.write(str(kib))
atexit.register(_write_peak)
"""
COMMAND_SCRIPT = (
    PEAK_HOOK
    + """
import runpy
sys.argv[0] = "dialogsum-batch"
runpy.run_module("dialogsum_batch", run_name="__main__", alter_sys=True)
"""
)
LOOP_SCRIPT = (
    PEAK_HOOK
    + """
import json, time
sys.path.insert(0, {bench!r})
import torch
torch.set_num_threads({threads})
from bench_pytorch_path import fixed_8, load
model, tokenizer, generation = load({model!r})
generation.num_beams, generation.max_new_tokens = {beams}, {max_new_tokens}
generation.min_length = generation.min_new_tokens = 0
texts = [json.loads(line)["dialogue"] for line in open({records!r}, encoding="utf-8") if line.strip()]
with open({output!r}, "w", encoding="utf-8") as out:
    for text in fixed_8(model, tokenizer, generation, texts):
        out.write(json.dumps({{"summary": text}}) + "\\n")
"""
)


# ---------------------------------------------------------------------------- one process


def run_process(system: str, model: Path, records: Path, threads: int, beams: int, args: argparse.Namespace) -> dict:
    """One whole process of ``system``: wall seconds, peak RSS, summaries and stderr."""
    folder = work(args) / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    output = folder / f"{system.strip('-').replace(' ', '-')}-{threads}-{beams}.jsonl"
    extra = SYSTEMS[system]
    if extra is None:
        script = LOOP_SCRIPT.format(
            bench=str(Path(__file__).resolve().parent),
            threads=threads,
            model=str(model),
            beams=beams,
            max_new_tokens=args.max_new_tokens,
            records=str(records),
            output=str(output),
        )
        command = [sys.executable, "-c", script]
    else:
        command = [sys.executable, "-c", COMMAND_SCRIPT, str(records), "-m", str(model), "-o", str(output)]
        command += ["--threads", str(threads), "--num-beams", str(beams), "--max-new-tokens", str(args.max_new_tokens)]
        command += extra
    peak = folder / "peak.kib"
    peak.unlink(missing_ok=True)
    output.unlink(missing_ok=True)
    env = child_env(DIALOGSUM_CACHE=str(work(args) / "cache"), OMP_NUM_THREADS=str(threads), BENCH_PEAK_FILE=str(peak))
    started = time.perf_counter()
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{system} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines() if line.strip()]
    peak_mib = round(int(peak.read_text()) / 1024, 1)
    return {"seconds": seconds, "peak_mib": peak_mib, "summaries": [r["summary"] for r in rows], "log": done.stderr}


def work(args: argparse.Namespace) -> Path:
    return Path(args.work_dir) / "default-bench"


def write_records(path: Path, rows: Sequence[dict[str, str]]) -> Path:
    """Dialogues only: no reference, so no ROUGE in the timed runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps({"id": row["id"], "dialogue": row["dialogue"]}, ensure_ascii=False) for row in rows)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- measurements


def measure_first_run(model: Path, records: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """The default and --fast on an emptied cache (they convert), then once more (cache hits)."""
    from dialogsum_batch.backends.ct2_cache import clear_entries

    clear_entries(work(args) / "cache" / "ctranslate2")
    rows = []
    for system in ("default", "--fast"):
        first = run_process(system, model, records, args.threads[0], 1, args)
        again = run_process(system, model, records, args.threads[0], 1, args)
        match = CONVERTED.search(first["log"])
        if not match or "from the CTranslate2 cache" not in again["log"]:
            raise SystemExit(f"expected a conversion, then a cache hit:\n{first['log']}\n{again['log']}")
        rows.append(
            {
                "system": system,
                "threads": args.threads[0],
                "convert_seconds": float(match.group(1)),
                "first_process_seconds": round(first["seconds"], 3),
                "cached_process_seconds": round(again["seconds"], 3),
                "first_peak_mib": first["peak_mib"],
                "cached_peak_mib": again["peak_mib"],
            }
        )
    return rows


def measure_speed(model: Path, records: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Best of ``repeats`` rounds per system, thread count and beam size, with speedups and agreement."""
    best: dict[tuple[str, int, int], dict[str, Any]] = {}
    for beams in args.beams:
        for threads in args.threads:
            for round_ in range(args.repeats):
                for system in SYSTEMS:
                    step = f"{system}, {threads} thread(s), {beams} beam(s), round {round_ + 1}/{args.repeats}"
                    print(f"{step} ...", file=sys.stderr, flush=True)
                    run = run_process(system, model, records, threads, beams, args)
                    kept = best.get((system, threads, beams))
                    if kept is None or run["seconds"] < kept["seconds"]:
                        best[(system, threads, beams)] = run
    rows = []
    for (system, threads, beams), run in best.items():
        loop, reference = best[(LOOP, threads, beams)], best[("transformers fp32", threads, beams)]
        rows.append(
            {
                "system": system,
                "threads": threads,
                "beams": beams,
                "seconds": round(run["seconds"], 3),
                "dialogues_per_s": round(args.records / run["seconds"], 3),
                "speedup": round(loop["seconds"] / run["seconds"], 2),
                "peak_mib": run["peak_mib"],
                "identical_to_transformers": same_share(run, reference),
                "identical_to_loop": same_share(run, loop),
                "serving": serving_line(run["log"]),
            }
        )
    return rows


def same_share(run: dict[str, Any], base: dict[str, Any]) -> float:
    pairs = list(zip(run["summaries"], base["summaries"], strict=True))
    return round(sum(a == b for a, b in pairs) / max(len(pairs), 1), 4)


def serving_line(log: str) -> str | None:
    """``ctranslate2, float32`` from the command's ``model ... (BACKEND, DTYPE)`` line; None for the loop."""
    match = re.search(r"info: model .* \(([^()]+)\)\s*$", log, re.MULTILINE)
    return match.group(1) if match else None


def measure_quality(args: argparse.Namespace) -> dict[str, Any] | None:
    """bench_ct2_cache's ROUGE-1 of transformers fp32, CTranslate2 float32 (the default) and int8 (--fast)."""
    if not args.quality:
        return None
    from bench_ct2_cache import measure_quality as ct2_quality

    options = argparse.Namespace(
        work_dir=args.work_dir,
        trained=args.trained,
        trained_records=args.trained_records,
        max_new_tokens=args.max_new_tokens,
        threads=1,
    )
    return ct2_quality(options)


# ---------------------------------------------------------------------------- report


def verdict(speed: list[dict[str, Any]]) -> dict[str, Any]:
    greedy = [r for r in speed if r["beams"] == 1]
    default = {r["threads"]: r for r in greedy if r["system"] == "default"}
    fast = {r["threads"]: r for r in greedy if r["system"] == "--fast"}
    return {
        "default_speedup": {t: r["speedup"] for t, r in default.items()},
        "default_pass": bool(default) and all(r["speedup"] >= TARGET_DEFAULT for r in default.values()),
        "default_identical": {t: r["identical_to_transformers"] for t, r in default.items()},
        "identical_pass": bool(default)
        and all(r["identical_to_transformers"] >= TARGET_IDENTICAL for r in default.values()),
        "fast_speedup": {t: r["speedup"] for t, r in fast.items()},
        "fast_pass": bool(fast) and all(r["speedup"] >= TARGET_FAST for r in fast.values()),
    }


def markdown(report: dict[str, Any]) -> str:
    env, targets = report["environment"], report["targets"]
    speed = markdown_table(
        ["system", "threads", "beams", "serving", "process s", "dialogues/s", "vs fixed-8", "peak MiB", "identical"],
        [
            [
                r["system"],
                r["threads"],
                r["beams"],
                r["serving"] or "transformers fp32, fixed 8",
                r["seconds"],
                r["dialogues_per_s"],
                f"{r['speedup']:.2f}x",
                r["peak_mib"],
                r["identical_to_transformers"],
            ]
            for r in report["speed"]
        ],
    )
    first = markdown_table(
        ["system", "threads", "conversion s", "first process s", "cached process s", "first peak MiB", "peak MiB"],
        [
            [
                r["system"],
                r["threads"],
                r["convert_seconds"],
                r["first_process_seconds"],
                r["cached_process_seconds"],
                r["first_peak_mib"],
                r["cached_peak_mib"],
            ]
            for r in report["first_run"]
        ],
    )
    lines = [
        f"Model {report['model']}, {report['records']} {report['source']} records, {report['max_new_tokens']} new "
        f"tokens, best of {report['repeats']}, whole processes; {env['machine']}, {env['cpu_cores']} cores, load "
        f"average {env['load_average']} before, {report['load_after']} after; torch {env['torch']}, "
        f"ctranslate2 {report['ctranslate2']}.",
        "",
        speed,
        "",
        "identical: share of summaries equal to `--backend transformers` (transformers fp32).",
        "",
        "First run (the conversion into an empty cache), then the cached run:",
        "",
        first,
    ]
    quality = report.get("quality")
    if quality:
        rouge = ", ".join(f"{name} {value:.2f}" for name, value in quality["rouge1"].items())
        lines += [
            "",
            f"Trained tiny model ({quality['records']} held-out chats, greedy): ROUGE-1 {rouge}; int8 - "
            f"transformers {quality['int8_rouge1_difference']:+.2f}; identical float32 {quality['fp32_identical']}, "
            f"int8 {quality['int8_identical']}.",
        ]
    lines += [
        "",
        f"Targets: default {targets['default_speedup']} (>= {TARGET_DEFAULT}x at every thread count: "
        f"{'PASS' if targets['default_pass'] else 'FAIL'}); identical {targets['default_identical']} "
        f"(>= {TARGET_IDENTICAL}: {'PASS' if targets['identical_pass'] else 'FAIL'}); --fast "
        f"{targets['fast_speedup']} (>= {TARGET_FAST}x: {'PASS' if targets['fast_pass'] else 'FAIL'}).",
        "",
        f"Reproduce: `{report['command']}`",
    ]
    return "\n".join(lines)


def run_all(args: argparse.Namespace) -> dict[str, Any]:
    import ctranslate2

    model = model_dir(args.model, Path(args.work_dir))
    records = write_records(work(args) / "records.jsonl", dialogues(args.records, args.source, seed=1))
    env = environment(max(args.threads))
    first_run = measure_first_run(model, records, args)
    speed = measure_speed(model, records, args)
    return {
        "model": args.model,
        "source": args.source,
        "records": args.records,
        "repeats": args.repeats,
        "threads": args.threads,
        "beams": args.beams,
        "max_new_tokens": args.max_new_tokens,
        "environment": env,
        "ctranslate2": ctranslate2.__version__,
        "first_run": first_run,
        "speed": speed,
        "quality": measure_quality(args),
        "targets": verdict(speed),
        "load_after": load_average(),
        "command": "python bench/bench_default.py " + " ".join(sys.argv[1:]),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="mid", choices=["tiny", "mid", "large"], help="benchmark model (mid)")
    parser.add_argument("--records", type=int, default=160, help="records per process (160)")
    parser.add_argument(
        "--source",
        default=available_sources()[-1],
        help="synthetic, dialogsum (../shared/data, real lengths) or a JSONL path (%(default)s)",
    )
    parser.add_argument("--threads", default="1,2", help="comma list of thread counts, each for every system (1,2)")
    parser.add_argument("--beams", default="1", help="comma list of beam sizes (1)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of all systems; the best counts (3)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="summary length (32)")
    parser.add_argument("--no-quality", dest="quality", action="store_false", help="skip the trained-model ROUGE")
    parser.add_argument("--trained", help="a trained transformers model for the quality figures [default: smoke]")
    parser.add_argument("--trained-records", type=int, default=200, help="held-out chats for quality (200)")
    parser.add_argument("--work-dir", default=str(WORK_DIR), help="models, cache and outputs (%(default)s)")
    parser.add_argument("--output-dir", default=str(RESULTS_DIR), help="where the JSON and Markdown go")
    parser.add_argument("--name", default="bench_default", help="result file names (bench_default)")
    args = parser.parse_args(argv)
    args.threads = [int(t) for t in str(args.threads).split(",") if t.strip()]
    args.beams = [int(b) for b in str(args.beams).split(",") if b.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    report = run_all(args)
    return publish(args.name, report, markdown(report), Path(args.output_dir))


if __name__ == "__main__":
    main()
