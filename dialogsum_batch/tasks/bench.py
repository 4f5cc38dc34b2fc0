"""``invoke bench`` (throughput against the usual ways, and flat memory), the backend, conversion-cache and
thread benchmarks, Ray's overhead, and ``invoke gpu-check``.

Thin wrappers: each runs a script under ``bench/`` so that a benchmark has one entry point whether
started by hand or through invoke, and so that every measurement gets a fresh process.
"""

from __future__ import annotations

import shlex
import sys

from . import register

THROUGHPUT_HELP = {
    "models": "Comma list of benchmark models: tiny, mid, large",
    "records": "Records per measurement (0: 512 for tiny, 192 for mid, 24 for large)",
    "beams": "Comma list of beam sizes, e.g. 1,4",
    "max_new_tokens": "Summary length (random weights run every summary to it)",
    "anchors": "Comma list of notebook, fixed-8, ctranslate2, ours",
    "repeats": "Rounds of all anchors; the best round of each counts",
    "threads": "torch threads for every anchor (0: the backend's automatic choice)",
    "output_dir": "Where the JSON and Markdown results go",
    "work_dir": "Where the benchmark models are kept between runs [default: $TMPDIR/dialogsum-bench]",
}
MEMORY_HELP = {
    "sizes": "Comma list of record counts; the last run's peak RSS is compared with the first's",
    "max_new_tokens": "Summary length (memory does not depend on it)",
    "limit": "Largest allowed ratio of peak RSS",
    "output_dir": "Where the JSON and Markdown results go",
    "work_dir": "Where the tiny model is kept [default: $TMPDIR/dialogsum-bench]",
}


def python(c, script: str, args: list[str], work_dir: str = "") -> None:
    """Run a bench script with this Python; ``--work-dir`` only when one was given."""
    extra = ["--work-dir", str(work_dir)] if work_dir else []
    c.run(shlex.join([sys.executable, script, *args, *extra]), pty=False)


@register(help=THROUGHPUT_HELP)
def bench_throughput(
    c,
    models="tiny,mid",
    records=0,
    beams="1,4",
    max_new_tokens=32,
    anchors="notebook,fixed-8,ctranslate2,ours",
    repeats=1,
    threads=0,
    output_dir="bench/results",
    work_dir="",
):
    """Dialogues/s of dialogsum-batch beside the notebook loop, fixed batches and CTranslate2, one process.

    invoke bench-throughput --models mid --beams 1,4
    """
    python(
        c,
        "bench/bench_throughput.py",
        [
            "--model",
            str(models),
            "--records",
            str(records),
            "--beams",
            str(beams),
            "--max-new-tokens",
            str(max_new_tokens),
            "--anchors",
            str(anchors),
            "--repeats",
            str(repeats),
            "--threads",
            str(threads),
            "--output-dir",
            str(output_dir),
        ],
        work_dir,
    )


@register(help=MEMORY_HELP)
def bench_memory(c, sizes="2000,20000", max_new_tokens=8, limit=1.3, output_dir="bench/results", work_dir=""):
    """Peak RSS of the command on 20,000 vs 2,000 records (fresh processes): streaming keeps it flat.

    invoke bench-memory
    """
    python(
        c,
        "bench/bench_memory.py",
        [
            "--sizes",
            str(sizes),
            "--max-new-tokens",
            str(max_new_tokens),
            "--limit",
            str(limit),
            "--output-dir",
            str(output_dir),
        ],
        work_dir,
    )


@register(
    help={
        "models": THROUGHPUT_HELP["models"],
        "beams": THROUGHPUT_HELP["beams"],
        "repeats": THROUGHPUT_HELP["repeats"],
        "output_dir": THROUGHPUT_HELP["output_dir"],
        "work_dir": THROUGHPUT_HELP["work_dir"],
    }
)
def bench(c, models="tiny,mid", beams="1,4", repeats=1, output_dir="bench/results", work_dir=""):
    """Every CPU benchmark: flat memory, then throughput against the anchors (about half an hour on 2 cores).

    invoke bench
    """
    bench_memory(c, output_dir=output_dir, work_dir=work_dir)
    bench_throughput(c, models=models, beams=beams, repeats=repeats, output_dir=output_dir, work_dir=work_dir)


CT2_CACHE_HELP = {
    "records": "Records per speed measurement (the same file for every system)",
    "beams": "Comma list of beam sizes, e.g. 1,4",
    "threads": "Threads for every system (0: every usable core)",
    "repeats": "Rounds of all systems; the best counts",
    "max_new_tokens": "Summary length",
    "trained": "A trained model for the int8 ROUGE-1 figure [default: the smoke fine-tune, made once]",
    "output_dir": "Where the JSON and Markdown results go",
    "work_dir": "Where models, the benchmark's cache and outputs are kept [default: $TMPDIR/dialogsum-bench]",
}
BACKENDS_HELP = {
    "records": "Synthetic dialogues per measurement",
    "threads": "CPU threads for both backends (0 = every core)",
    "beams": "Comma list of beam sizes to measure, e.g. 1,4",
    "repeats": "Timed runs per measurement; the best counts (steadier on shared cores)",
    "output_dir": "Where the JSON and Markdown results go",
    "work_dir": "Where the benchmark model and its exports are kept between runs [default: $TMPDIR/dialogsum-bench]",
}
THREADS_HELP = {
    "records": "Records per run",
    "busy_seconds": "Length of the busy minute before each run of that case (shorten for a smoke run)",
    "repeats": "Runs per setting and case; the best counts",
    "cases": "Comma list of idle, after-busy-minute, concurrent-job",
    "output_dir": "Where the JSON and Markdown results go",
    "work_dir": "Where the benchmark model is kept [default: $TMPDIR/dialogsum-bench]",
}


@register(help=BACKENDS_HELP)
def bench_backends(c, records=64, threads=0, beams="1,4", repeats=1, output_dir="bench/results", work_dir=""):
    """Dialogues/s of transformers fp32 vs CTranslate2 fp32 and int8 on CPU, mid-size random Pegasus.

    invoke bench-backends --records 64
    """
    python(
        c,
        "bench/bench_backends.py",
        [
            "--records",
            str(records),
            "--threads",
            str(threads),
            "--beams",
            str(beams),
            "--repeats",
            str(repeats),
            "--output-dir",
            str(output_dir),
        ],
        work_dir,
    )


@register(help=CT2_CACHE_HELP)
def bench_ct2_cache(
    c,
    records=96,
    beams="1,4",
    threads=0,
    repeats=3,
    max_new_tokens=32,
    trained="",
    output_dir="bench/results",
    work_dir="",
):
    """CTranslate2 through the conversion cache vs transformers: conversion time, dialogues/s, agreement, int8 ROUGE.

    invoke bench-ct2-cache --repeats 3
    """
    python(
        c,
        "bench/bench_ct2_cache.py",
        [
            "--records",
            str(records),
            "--beams",
            str(beams),
            "--repeats",
            str(repeats),
            "--max-new-tokens",
            str(max_new_tokens),
            "--output-dir",
            str(output_dir),
            *(["--threads", str(threads)] if int(threads) else []),
            *(["--trained", str(trained)] if trained else []),
        ],
        work_dir,
    )


@register(help=THREADS_HELP)
def bench_threads(
    c,
    records=96,
    busy_seconds=60,
    repeats=2,
    cases="idle,after-busy-minute,concurrent-job",
    output_dir="bench/results",
    work_dir="",
):
    """--threads 0 against explicit counts: idle, right after a busy minute, beside a concurrent job (<= 1.15x).

    invoke bench-threads
    """
    python(
        c,
        "bench/bench_threads.py",
        [
            "--records",
            str(records),
            "--busy-seconds",
            str(busy_seconds),
            "--repeats",
            str(repeats),
            "--cases",
            str(cases),
            "--output-dir",
            str(output_dir),
        ],
        work_dir,
    )


DEFAULT_HELP = {
    "model": "Benchmark model: tiny, mid or large",
    "records": "Records per process (the same file for every system)",
    "source": "synthetic, dialogsum (../shared/data, real lengths) or a JSONL path [default: dialogsum if present]",
    "threads": "Comma list of thread counts, each for every system",
    "beams": "Comma list of beam sizes",
    "repeats": "Rounds of all systems; the best counts",
    "quality": "Also ROUGE-1 of float32 and int8 on the trained tiny model",
    "output_dir": "Where the JSON and Markdown results go",
    "work_dir": "Where models, the benchmark's cache and outputs are kept [default: $TMPDIR/dialogsum-bench]",
}


@register(help=DEFAULT_HELP)
def bench_default(
    c,
    model="mid",
    records=160,
    source="",
    threads="1,2",
    beams="1",
    repeats=3,
    quality=True,
    output_dir="bench/results",
    work_dir="",
):
    """The default command (and --fast) against a fixed-8 transformers loop: whole processes, equal threads.

    invoke bench-default --threads 1,2 --repeats 3
    """
    args = ["--model", str(model), "--records", str(records), "--threads", str(threads), "--beams", str(beams)]
    args += ["--repeats", str(repeats), "--output-dir", str(output_dir)]
    args += (["--source", str(source)] if source else []) + ([] if quality else ["--no-quality"])
    python(c, "bench/bench_default.py", args, work_dir)


@register(
    help={
        "model": "Benchmark model: tiny, mid, large",
        "backend": "transformers or ctranslate2",
        "records": "Comma list of sizes; two or more separate Ray's start-up from its cost per dialogue",
        "repeats": "Interleaved rounds; the best of each system counts",
        "address": "A Ray cluster to run on instead of a local Ray per run",
        "output_dir": "Where the JSON and Markdown results go",
        "work_dir": "Where the benchmark models are kept between runs [default: $TMPDIR/dialogsum-bench]",
    }
)
def bench_ray(
    c,
    model="mid",
    backend="ctranslate2",
    records="64,256",
    repeats=2,
    address="",
    output_dir="bench/results",
    work_dir="",
):
    """Ray's overhead against the local command on the same records and cores (needs the ray extra).

    invoke bench-ray
    """
    args = ["--model", str(model), "--backend", str(backend), "--records", str(records), "--repeats", str(repeats)]
    args += ["--output-dir", str(output_dir)] + (["--address", str(address)] if address else [])
    python(c, "bench/bench_ray.py", args, work_dir)


@register(
    help={
        "only": "Comma list of allocator, oom, train, throughput",
        "cpu_smoke": "Rehearse every section on the CPU with tiny sizes (no GPU needed)",
    }
)
def gpu_check(c, only="allocator,oom,train,throughput", cpu_smoke=False):
    """On a CUDA machine: bf16 training, expandable segments, real-OOM batch splits, full-size throughput.

    invoke gpu-check          # writes $OUT/gpu_check.json, else bench/results/gpu_check.json
    """
    python(c, "bench/gpu_check.py", ["--only", str(only)] + (["--cpu-smoke"] if cpu_smoke else []))
