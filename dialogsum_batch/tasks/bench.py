"""``invoke bench`` (throughput against the usual ways, and flat memory), the backend, conversion-cache,
default-command, allocator and thread benchmarks, Ray's overhead, and ``invoke gpu-check``.

Thin wrappers: each runs a script under ``bench/`` so that a benchmark has one entry point whether
started by hand or through invoke, and so that every measurement gets a fresh process. An option left
out is left to the script, whose defaults are the command's (``bench/harness.py``). A script's task is
its options' help table and a docstring (``script_task``): the table is the signature.
"""

from __future__ import annotations

import functools
import inspect
import shlex
import sys
from collections.abc import Callable
from typing import Any

from . import register, takes_options

SCRIPTS_DEFAULT = " [default: the script's]"
THROUGHPUT_HELP = {
    "models": "Comma list of benchmark models: tiny, mid, large",
    "records": "Records per measurement (0: 512 for tiny, 192 for mid, 24 for large)",
    "beams": "Comma list of beam sizes, e.g. 1,4",
    "max_new_tokens": "Summary length [default: the model's, as the command]",
    "anchors": "Comma list of notebook, fixed-8, ctranslate2, ours",
    "repeats": "Rounds of all anchors; the best round of each counts",
    "threads": "torch threads for every anchor [default: 0, the command's automatic choice]",
    "output_dir": "Where the JSON and Markdown results go [default: bench/results]",
    "work_dir": "Where the benchmark models are kept between runs [default: $TMPDIR/dialogsum-bench]",
}
MEMORY_HELP = {
    "sizes": "Comma list of record counts; the last run's peak RSS is compared with the first's",
    "max_new_tokens": "Summary length (memory does not depend on it)",
    "limit": "Largest allowed ratio of peak RSS",
    "output_dir": THROUGHPUT_HELP["output_dir"],
    "work_dir": "Where the tiny model is kept [default: $TMPDIR/dialogsum-bench]",
}


def python(c, script: str, args: list[str], work_dir: str = "") -> None:
    """Run a bench script with this Python; ``--work-dir`` only when one was given."""
    extra = ["--work-dir", str(work_dir)] if work_dir else []
    c.run(shlex.join([sys.executable, script, *args, *extra]), pty=False)


def flags(**options: object) -> list[str]:
    """``--name value`` for every option given (None leaves it to the script; True is a bare flag)."""
    args: list[str] = []
    for name, value in options.items():
        if value is None or value is False or value == "":
            continue
        flag = "--" + name.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    return args


def helps(table: dict[str, str]) -> dict[str, str]:
    """Help lines, each saying that an option left out is the script's default unless it says its own."""
    return {name: text if "[default" in text else text + SCRIPTS_DEFAULT for name, text in table.items()}


def script_task(
    script: str, table: dict[str, str], renamed: dict[str, str] | None = None, on: tuple[str, ...] = ()
) -> Callable[[Callable[..., Any]], Any]:
    """Register the decorated stub (its name and docstring) as a task that runs ``bench/SCRIPT``.

    The task takes ``table``'s options, each None (left to the script) but ``work_dir`` ("": the
    script's) and the switches in ``on`` (True; False passes ``--no-NAME``, after the others), and
    passes them on in the table's order as ``--name value``; ``renamed`` maps an option onto another
    flag name.
    """
    renamed = renamed or {}
    unknown = (set(on) | set(renamed)) - set(table)
    if unknown:
        raise ValueError(f"{script}: options without a help line: {sorted(unknown)}")

    defaults = {name: "" if name == "work_dir" else True if name in on else None for name in table}

    def wrap(stub: Callable[..., Any]) -> Any:
        @takes_options(defaults, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        @functools.wraps(stub)
        def run(c: Any, options: dict[str, Any]) -> None:
            work_dir = options.pop("work_dir", "")
            given = {renamed.get(name, name): value for name, value in options.items() if name not in on}
            given |= {f"no_{name}": not options[name] for name in on}
            python(c, f"bench/{script}", flags(**given), work_dir)

        return register(help=helps(table))(run)

    return wrap


@script_task("bench_throughput.py", THROUGHPUT_HELP, renamed={"models": "model"})
def bench_throughput(c):
    """Dialogues/s of dialogsum-batch beside the notebook loop, fixed batches and CTranslate2, one process.

    invoke bench-throughput --models mid --beams 1,4
    """


@script_task("bench_memory.py", MEMORY_HELP)
def bench_memory(c):
    """Peak RSS of the command on 20,000 vs 2,000 records (fresh processes): streaming keeps it flat.

    invoke bench-memory
    """


@register(
    help={
        "models": THROUGHPUT_HELP["models"] + " [default: tiny,mid]",
        "beams": THROUGHPUT_HELP["beams"] + SCRIPTS_DEFAULT,
        "repeats": THROUGHPUT_HELP["repeats"] + " [default: 1]",
        "output_dir": THROUGHPUT_HELP["output_dir"],
        "work_dir": THROUGHPUT_HELP["work_dir"],
    }
)
def bench(c, models="tiny,mid", beams=None, repeats=1, output_dir=None, work_dir=""):
    """Every CPU benchmark: flat memory, then throughput against the anchors (about half an hour on 2 cores).

    invoke bench
    """
    bench_memory(c, output_dir=output_dir, work_dir=work_dir)
    bench_throughput(c, models=models, beams=beams, repeats=repeats, output_dir=output_dir, work_dir=work_dir)


CT2_CACHE_HELP = {
    "records": "Records per speed measurement (the same file for every system)",
    "beams": "Comma list of beam sizes, e.g. 1,4",
    "threads": "Threads for every system [default: 0, the command's automatic choice]",
    "repeats": "Rounds of all systems; the best counts",
    "max_new_tokens": THROUGHPUT_HELP["max_new_tokens"],
    "trained": "A trained model for the int8 ROUGE-1 figure [default: the smoke fine-tune, made once]",
    "output_dir": THROUGHPUT_HELP["output_dir"],
    "work_dir": "Where models, the benchmark's cache and outputs are kept [default: $TMPDIR/dialogsum-bench]",
}
BACKENDS_HELP = {
    "records": "Synthetic dialogues per measurement",
    "threads": "CPU threads for both backends [default: 0, the command's automatic choice]",
    "beams": "Comma list of beam sizes to measure, e.g. 1,4",
    "repeats": "Rounds of all systems, each run in a process of its own; the best counts",
    "output_dir": THROUGHPUT_HELP["output_dir"],
    "work_dir": "Where the benchmark model and its exports are kept between runs [default: $TMPDIR/dialogsum-bench]",
}
THREADS_HELP = {
    "records": "Records per run",
    "busy_seconds": "Length of the busy minute before each run of that case (shorten for a smoke run)",
    "repeats": "Runs per setting and case; the best counts",
    "cases": "Comma list of idle, after-busy-minute, concurrent-job",
    "output_dir": THROUGHPUT_HELP["output_dir"],
    "work_dir": "Where the benchmark model is kept [default: $TMPDIR/dialogsum-bench]",
}


@script_task("bench_backends.py", BACKENDS_HELP)
def bench_backends(c):
    """Dialogues/s of transformers fp32 vs CTranslate2 fp32 and int8 on CPU, mid-size random Pegasus.

    invoke bench-backends --records 64
    """


@script_task("bench_ct2_cache.py", CT2_CACHE_HELP)
def bench_ct2_cache(c):
    """CTranslate2 through the conversion cache vs transformers: conversion time, dialogues/s, agreement, int8 ROUGE.

    invoke bench-ct2-cache --repeats 3
    """


@script_task("bench_threads.py", THREADS_HELP)
def bench_threads(c):
    """--threads 0 against explicit counts: idle, right after a busy minute, beside a concurrent job (<= 1.15x).

    invoke bench-threads
    """


DEFAULT_HELP = {
    "model": "Benchmark model: tiny, mid or large",
    "records": "Records per process (the same file for every system)",
    "source": "synthetic, dialogsum (../shared/data, real lengths) or a JSONL path [default: dialogsum if present]",
    "threads": "Comma list of thread counts, each for every system",
    "beams": "Comma list of beam sizes",
    "repeats": "Rounds of all systems; the best counts",
    "quality": "Also ROUGE-1 of float32 and int8 on the trained tiny model [default: on]",
    "output_dir": THROUGHPUT_HELP["output_dir"],
    "work_dir": "Where models, the benchmark's cache and outputs are kept [default: $TMPDIR/dialogsum-bench]",
}


@script_task("bench_default.py", DEFAULT_HELP, on=("quality",))
def bench_default(c):
    """The default command (and --fast) against a fixed-8 transformers loop: whole processes, equal threads.

    invoke bench-default --threads 1,2 --repeats 3
    """


ALLOCATOR_HELP = {name: DEFAULT_HELP[name] for name in ("model", "records", "source", "threads", "repeats")}
ALLOCATOR_HELP |= {"output_dir": DEFAULT_HELP["output_dir"], "work_dir": DEFAULT_HELP["work_dir"]}


@script_task("bench_allocator.py", ALLOCATOR_HELP)
def bench_allocator(c):
    """The command's batch allocator (glibc keeps freed memory) against glibc's defaults: seconds, page faults.

    invoke bench-allocator --threads 1,2 --repeats 3
    """


RAY_HELP = {
    "model": DEFAULT_HELP["model"],
    "backend": "auto, transformers or ctranslate2 [default: the command's]",
    "records": "Comma list of record counts; two or more separate Ray's start-up from its cost per dialogue",
    "source": DEFAULT_HELP["source"],
    "cores": "Cores every system gets in all [default: the usable cores]",
    "repeats": "Interleaved rounds of all systems; the best counts",
    "address": "A Ray cluster to run on instead of a local Ray per run",
    "output_dir": THROUGHPUT_HELP["output_dir"],
    "work_dir": THROUGHPUT_HELP["work_dir"],
}


@script_task("bench_ray.py", RAY_HELP)
def bench_ray(c):
    """Ray's overhead against the local command on the same records and cores (needs the ray extra).

    invoke bench-ray --records 64,256
    """


@register(
    help={
        "only": "Comma list of allocator, oom, train, throughput, backends [default: all]",
        "cpu_smoke": "Rehearse every section on the CPU with tiny sizes (no GPU needed)",
    }
)
def gpu_check(c, only=None, cpu_smoke=False):
    """On a CUDA machine: bf16 training, expandable segments, real-OOM batch splits, full-size throughput.

    invoke gpu-check          # writes $OUT/gpu_check.json, else bench/results/gpu_check.json
    """
    python(c, "bench/gpu_check.py", flags(only=only, cpu_smoke=cpu_smoke))
