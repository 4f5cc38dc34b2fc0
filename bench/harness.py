"""How a benchmark runs: its arguments, rounds of timed runs, whole processes of the command, engines in one
process, and its report. Every script under ``bench/`` is built on these; ``common.py`` holds what they
measure with (models, inputs, the machine header, result files).

Defaults that are the command's own (threads, token budget, summary length) are read from the package's
settings (``dialogsum_batch.config.default_of``), so a benchmark measures what ``dialogsum-batch`` does
unless told otherwise.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from common import (
    MODELS,
    RESULTS_DIR,
    WORK_DIR,
    available_sources,
    child_env,
    chunks,
    dialogues,
    environment,
    publish,
    write_records,
)

from dialogsum_batch.config import default_of

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")

# ---------------------------------------------------------------------------- arguments


def int_list(text: str) -> list[int]:
    """``1,4`` -> [1, 4]."""
    return [int(part) for part in str(text).split(",") if part.strip()]


def choice_list(choices: Sequence[str]) -> Callable[[str], list[str]]:
    """An argparse type: a comma list of some of ``choices``."""

    def parse(text: str) -> list[str]:
        picked = [part.strip() for part in str(text).split(",") if part.strip()]
        unknown = sorted(set(picked) - set(choices))
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}; choose from {', '.join(choices)}")
        return picked

    return parse


class CommandDefault:
    """An argument whose default is the command's own (``dialogsum_batch.config.default_of``)."""

    def __repr__(self) -> str:
        return "the command's default"


COMMAND = CommandDefault()


def arguments(
    doc: str | None,
    script: str,
    *,
    model: str | None = None,
    records: int | str | None = None,
    source: str | None = None,
    beams: str | None = None,
    max_new_tokens: int | None | CommandDefault | bool = COMMAND,
    threads: int | str | CommandDefault | bool = COMMAND,
    repeats: int | None = None,
    name: str | None = None,
) -> argparse.ArgumentParser:
    """A parser for ``script`` (described by its docstring's first paragraph) with the shared arguments it
    asks for, each given its default: ``--model``, ``--records`` (a comma list when its default is one) and
    ``--source``, ``--beams`` (a comma list), ``--repeats`` and ``--max-load``, ``--name`` (which may name
    other arguments: ``latency-{model}``).
    ``--max-new-tokens`` and ``--threads`` (a comma list when its default is one) are offered unless False,
    with the command's defaults unless given; ``--output-dir`` and ``--work-dir`` always."""
    parser = argparse.ArgumentParser(
        prog=f"python bench/{Path(script).name}", description=(doc or "").split("\n\n")[0].strip()
    )
    add = parser.add_argument
    if model is not None:
        add("--model", default=model, choices=list(MODELS), help="benchmark model (%(default)s)")
    if records is not None:
        many = isinstance(records, str)
        add("--records", type=int_list if many else int, default=records, help=RECORDS_HELP[many])
        add("--source", default=source or available_sources()[-1], help=SOURCE_HELP)
    if beams is not None:
        add("--beams", type=int_list, default=beams, help="comma list of beam sizes (%(default)s)")
    if max_new_tokens is not False:
        default = default_of("max_new_tokens") if max_new_tokens is COMMAND else max_new_tokens
        add("--max-new-tokens", type=int, default=default, help="summary length cap (%(default)s; None: the model's)")
    if threads is not False:
        default = default_of("threads") if threads is COMMAND else threads
        many = isinstance(default, str)
        add("--threads", type=int_list if many else int, default=default, help=THREADS_HELP[many])
    if repeats is not None:
        add("--repeats", type=int, default=repeats, help="rounds of every system; the best counts (%(default)s)")
        add("--max-load", type=float, help="first wait (up to 10 min) for a 1-minute load average below this")
    add("--output-dir", type=Path, default=RESULTS_DIR, help="where the JSON and Markdown go")
    add("--work-dir", type=Path, default=WORK_DIR, help="models, caches and outputs (%(default)s)")
    if name is not None:
        add("--name", default=name, help="result file names, without suffix (%(default)s)")
    return parser


RECORDS_HELP = {
    False: "records per measurement (%(default)s)",
    True: "comma list of record counts, one measurement each (%(default)s)",
}
SOURCE_HELP = "synthetic, dialogsum (../shared/data, real lengths) or a JSONL path (%(default)s)"
THREADS_HELP = {
    False: "CPU threads (%(default)s; 0: the command's automatic choice)",
    True: "comma list of thread counts (%(default)s)",
}


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments, with ``command``: the line that reproduces this run."""
    given = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(given)
    args.command = " ".join([parser.prog, shlex.join(given)]).strip()
    if getattr(args, "name", None):
        args.name = args.name.format(**vars(args)).replace(",", "-")
    return args


SHARED = ("model", "source", "records", "beams", "max_new_tokens", "threads", "repeats")  # recorded in every report


def benchmark_main(
    parse_args: Callable[[Sequence[str] | None], argparse.Namespace],
    measure: Callable[[argparse.Namespace], dict[str, Any]],
    markdown: Callable[[dict[str, Any]], str],
) -> Callable[[Sequence[str] | None], dict[str, Any]]:
    """A benchmark's ``main(argv)``: its arguments, a quiet enough machine (``--max-load``), the machine header,
    the measurement, and the report written as ``--name``.json and .md under ``--output-dir``: the shared
    arguments, what ``measure`` found, the machine and the command that reproduces it."""

    def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
        args = parse_args(argv)
        wait_for_load(getattr(args, "max_load", None))
        env = environment(getattr(args, "threads", None))
        given = {name: getattr(args, name) for name in SHARED if hasattr(args, name)}
        report = {**given, **measure(args), "environment": env, "command": args.command}
        return publish(args.name, report, markdown(report), args.output_dir)

    return main


# ---------------------------------------------------------------------------- rounds


def rounds(
    systems: Iterable[K], repeats: int, run: Callable[[K], R], label: Callable[[K], str] = str
) -> dict[K, list[R]]:
    """Every system once a round, ``repeats`` rounds, so that the machine's drift over a run of many minutes
    (other jobs, heat) hits them alike; every run of each system, in round order."""
    runs: dict[K, list[R]] = {system: [] for system in systems}
    for number in range(repeats):
        for system in runs:
            print(f"{label(system)}, round {number + 1}/{repeats} ...", file=sys.stderr, flush=True)
            runs[system].append(run(system))
    return runs


def fastest(runs: Iterable[dict[str, Any]], key: str = "seconds") -> dict[str, Any]:
    """The run with the fewest ``key`` seconds: the best of a system's rounds."""
    return min(runs, key=lambda run: run[key])


def wait_for_load(max_load: float | None, patience_s: float = 600.0) -> None:
    """Wait (up to ``patience_s``) until the 1-minute load average drops below ``max_load``."""
    deadline = time.monotonic() + patience_s
    while max_load is not None and os.getloadavg()[0] >= max_load and time.monotonic() < deadline:
        print(f"load {os.getloadavg()[0]:.2f} >= {max_load}; waiting", file=sys.stderr, flush=True)
        time.sleep(15)


def same_share(summaries: Sequence[str], reference: Sequence[str]) -> float:
    """The share of ``summaries`` equal to ``reference``'s, record by record."""
    pairs = list(zip(summaries, reference, strict=True))
    return round(sum(a == b for a, b in pairs) / max(len(pairs), 1), 4)


# ---------------------------------------------------------------------------- whole processes

PEAK_ENV = "BENCH_PEAK_FILE"
# Every measured process starts through this: it notes its own peak resident memory (VmHWM) as it exits,
# then runs ``-m MODULE ARGS``, ``-c CODE ARGS`` or ``SCRIPT ARGS``. A parent's view of a child's peak
# (wait4's ru_maxrss) starts from the parent's own at fork: a benchmark holding torch would hide any below it.
MEASURED = """
import atexit, os, resource, runpy, sys
def _peak():
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
atexit.register(_peak)
if sys.argv[1] == "-m":
    sys.argv = [sys.argv[2], *sys.argv[3:]]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
elif sys.argv[1] == "-c":
    code, sys.argv = sys.argv[2], ["-c", *sys.argv[3:]]
    exec(compile(code, "<string>", "exec"), {"__name__": "__main__"})
else:
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def summarize_command(
    inputs: Sequence[str | Path],
    model: str | Path,
    *,
    output: Path | None = None,
    metrics: Path | None = None,
    threads: int | None = None,
    beams: int | None = None,
    max_new_tokens: int | None = None,
    options: Sequence[str] = (),
    program: Sequence[str] = ("-m", "dialogsum_batch", "summarize"),
) -> list[str]:
    """``-m dialogsum_batch summarize INPUTS -m MODEL ...``: a measured run of the command (after ``python``),
    or of another ``program`` that takes its flags (``fixed_loop.py``). An option left None is not passed, so
    the command's own default applies; ``-`` as the input reads stdin."""
    line = [*program, *map(str, inputs), "-m", str(model)]
    given = {"-o": output, "--metrics-out": metrics, "--threads": threads, "--num-beams": beams}
    given["--max-new-tokens"] = max_new_tokens
    for flag, value in given.items():
        line += [flag, str(value)] if value is not None else []
    return line + list(options)


def command_env(work_dir: Path, **overrides: str | None) -> dict[str, str]:
    """The environment of a measured command: ``child_env`` with the conversion cache in the work folder."""
    return child_env(DIALOGSUM_CACHE=str(Path(work_dir) / "cache"), **overrides)


def clear_conversions(work_dir: Path) -> None:
    """Empty the benchmark's CTranslate2 conversion cache, so that the next run converts."""
    from dialogsum_batch.backends.ct2_cache import clear_entries

    clear_entries(Path(work_dir) / "cache" / "ctranslate2")


def fill_cache(model: Path, work_dir: Path, **options: Any) -> None:
    """Run the command once on one record, so that the measured runs find the model's CTranslate2
    conversion in the cache (the command's default on a CPU) instead of each paying for it."""
    with tempfile.TemporaryDirectory(prefix="bench-warm-") as tmp:
        records = write_records(Path(tmp) / "one.jsonl", dialogues(1, "synthetic"))
        run_process(
            summarize_command([records], model, output=Path(tmp) / "out.jsonl", **options), command_env(work_dir)
        )


@dataclass(frozen=True)
class Finished:
    """A measured process: exit status, wall seconds, its own peak memory, its page faults (minor: pages the
    kernel handed it, none read from disk) and what it printed."""

    exit: int
    seconds: float
    peak_mib: float | None
    stdout: str
    stderr: str
    page_faults: int = 0


def run_process(
    command: Sequence[str],
    env: dict[str, str] | None = None,
    feed: Callable[[IO[bytes]], None] | None = None,
    ok: Sequence[int] = (0,),
) -> Finished:
    """``python COMMAND`` (``-m MODULE ...``, ``-c CODE ...`` or ``SCRIPT ...``) in a fresh process, timed from
    start to exit; ``feed`` writes its stdin (closed after). An exit status outside ``ok`` ends the benchmark
    with its stderr."""
    with tempfile.TemporaryDirectory(prefix="bench-run-") as tmp:
        peak, out, err = Path(tmp) / "peak.kib", Path(tmp) / "stdout", Path(tmp) / "stderr"
        environ = {**(env if env is not None else child_env()), PEAK_ENV: str(peak)}
        with out.open("wb") as stdout, err.open("wb") as stderr:
            faults = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt  # children waited for, so far
            started = time.perf_counter()
            stdin = subprocess.PIPE if feed is not None else subprocess.DEVNULL
            argv = [sys.executable, "-c", MEASURED, *command]
            process = subprocess.Popen(argv, env=environ, stdin=stdin, stdout=stdout, stderr=stderr)
            if feed is not None:
                feed_and_close(process.stdin, feed)
            code = process.wait()
            seconds = time.perf_counter() - started
        done = Finished(
            code,
            seconds,
            round(int(peak.read_text()) / 1024, 1) if peak.is_file() else None,
            out.read_text(encoding="utf-8", errors="replace"),
            err.read_text(encoding="utf-8", errors="replace"),
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - faults,
        )
    if code not in ok:
        raise SystemExit(f"{shlex.join(command)[:500]} failed ({code}):\n{done.stderr[-3000:]}")
    return done


def feed_and_close(pipe: IO[bytes], feed: Callable[[IO[bytes]], None]) -> None:
    """``feed`` the child's stdin, then end it; a child that stopped reading says why by its exit status."""
    try:
        feed(pipe)
    except BrokenPipeError:
        pass
    finally:
        try:
            pipe.close()
        except BrokenPipeError:
            pass


# ---------------------------------------------------------------------------- in one process


def engine(backend: Any, log: Callable[[str], None] | None = None, **options: Any) -> Any:
    """The command's batch engine over a loaded backend, built where every surface builds it
    (``Summarizer.from_settings(...).engine()``); ``options`` are the command's (``batch_tokens=``...)."""
    from dialogsum_batch.config import run_settings
    from dialogsum_batch.inference.summarizer import Summarizer

    return Summarizer.from_settings(run_settings(**options), backend).engine(log=log)


def records(texts: Iterable[str]) -> list[Any]:
    """``texts`` as the engine's records, ids their positions."""
    from dialogsum_batch.inference.records import Record

    return [Record(i, str(i), text) for i, text in enumerate(texts)]


def fixed_batches(
    model: Any, tokenizer: Any, generation: Any, texts: list[str], size: int = 8
) -> tuple[list[str], int]:
    """The idiomatic transformers loop: batches of ``size`` in arrival order, each padded to its longest row,
    ``generate``, decode. The summaries, and the tokens generated (the decoder's start token left out)."""
    import torch

    summaries: list[str] = []
    generated = 0
    with torch.inference_mode():
        for batch in chunks(texts, size):
            inputs = tokenizer(batch, max_length=1024, truncation=True, padding=True, return_tensors="pt")
            output = model.generate(**inputs.to(model.device), generation_config=generation)
            summaries += [text.strip() for text in tokenizer.batch_decode(output, skip_special_tokens=True)]
            generated += int((output[:, 1:] != tokenizer.pad_token_id).sum())
    return summaries, generated


def load_transformers(
    path: Path, beams: int | None = None, max_new_tokens: int | None = None, **more: Any
) -> tuple[Any, Any, Any]:
    """A transformers model (float32, eval), its tokenizer and a copy of its generation config with the
    decoding asked (None keeps the model's own, as the command; ``more`` sets other fields); no minimum length."""
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from dialogsum_batch.logs import library_bars, quiet_transformers

    quiet_transformers()
    with library_bars(show=False):
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSeq2SeqLM.from_pretrained(path, dtype=torch.float32).eval()
    return model, tokenizer, decoding(model.generation_config, beams, max_new_tokens, **more)


def decoding(generation: Any, beams: int | None, max_new_tokens: int | None, **more: Any) -> Any:
    """A copy of ``generation`` with the beams and summary length asked (None keeps its own), no minimum length."""
    import copy

    changed = copy.deepcopy(generation)
    asked = {"num_beams": beams, "max_new_tokens": max_new_tokens, **more}
    changed.update(**{key: value for key, value in asked.items() if value is not None})
    changed.min_length = changed.min_new_tokens = 0
    return changed
