"""A whole batch job: lock, resume, read, summarize, write, report; returns the exit code cron sees."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backends import Backend, load_backend
from .config import RunSettings
from .engine import Engine, Interrupted, Stats, select
from .errors import DataError, InputError
from .logs import Log
from .outputs import JsonlWriter, OutputLock, done_errors, done_ids, error_record, open_output
from .records import MAX_LINE_BYTES, read_records

EXIT_OK, EXIT_PARTIAL = 0, 3  # failures take their error's exit_code (1, or 75 when locked); usage is Click's 2
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


@dataclass(frozen=True)
class JobFiles:
    """Inputs and outputs of a job; ``-`` is stdin or stdout."""

    inputs: tuple[str, ...] = ()
    input_format: str = "auto"  # auto | jsonl | text
    output: str = "-"
    errors_out: str | None = None  # JSONL of bad records (with --on-error skip)
    metrics_out: str | None = None  # the final summary as JSON
    lock: str | None = None  # default: OUTPUT.lock beside a file output
    resume: bool = False  # skip ids already in OUTPUT, append the rest
    max_line_bytes: int = MAX_LINE_BYTES  # longer input lines are bad records, read past without holding them


class StopFlag:
    """Turns the first SIGINT / SIGTERM into a polite stop; a second one ends the process at once.

    ``grace``: seconds after the first signal in which another counts as the same stop. Under a launcher
    a Ctrl-C reaches every process twice: from the terminal, then as the launcher's SIGTERM.
    """

    def __init__(self, grace: float = 0.0) -> None:
        self.signal: int | None = None
        self.grace = grace
        self.since = 0.0

    def __call__(self) -> bool:
        return self.signal is not None

    def handle(self, number: int, frame: Any) -> None:
        if self.signal is not None:
            if time.monotonic() - self.since < self.grace:
                return
            raise KeyboardInterrupt
        self.signal = number
        self.since = time.monotonic()

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopFlag]:
        previous = {sig: signal.signal(sig, self.handle) for sig in EXIT_SIGNAL}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def lock_path(files: JobFiles) -> str | None:
    if files.lock:
        return files.lock
    return None if files.output == "-" else os.path.realpath(files.output) + ".lock"  # one lock per real file


def run_job(files: JobFiles, settings: RunSettings, log: Log, progress: bool = False,
            backend: Backend | None = None) -> tuple[int, Stats]:
    """Run the job under its lock; the backend is loaded here unless one is given (tests, tools).

    Under ``accelerate launch`` / ``torchrun`` (WORLD_SIZE > 1) every process calls this and the job is
    data-parallel (dialogsum_batch.distributed); the main process alone writes, and all return one code.
    """
    from .distributed import detect_world, run_parallel

    if detect_world().size > 1:
        return run_parallel(files, settings, log, progress, backend)
    path = lock_path(files)
    stop = StopFlag()
    with OutputLock(path) if path else contextlib.nullcontext(), stop.installed():
        done = done_ids(files.output) if files.resume else Counter()
        if done:
            log.info(f"resuming: {sum(done.values())} records already in {files.output}")
        backend = backend or load_backend(settings.model, settings.decode, log=log.info)
        log.info(f"model {settings.model.name} on {backend.device} ({backend.name})")
        return _summarize(files, settings, backend, done, log, progress, stop)


def _summarize(files: JobFiles, settings: RunSettings, backend: Backend, done: Counter[str], log: Log,
               progress: bool, stop: StopFlag) -> tuple[int, Stats]:
    with contextlib.ExitStack() as stack:
        writer = JsonlWriter(stack.enter_context(closing_output(open_output(files.output, files.resume))))
        errors = ErrorSink(files.errors_out, settings.on_error, log, stack, files.resume)
        bar = stack.enter_context(progress_bar(progress))
        engine = Engine(backend, settings, writer.write, errors.report, writer.flush, stop, log.warning, bar)
        items = select(read_records(files.inputs, files.input_format, settings.fields, files.max_line_bytes),
                       engine.stats, done, settings.shard)
        code = _execute(engine, items, stop, log)
    finish_job(engine.stats, files, backend, log, code)
    return code, engine.stats


def _execute(engine: Engine, items: Any, stop: StopFlag, log: Log) -> int:
    try:
        engine.run(items)
    except Interrupted:
        name = signal.Signals(stop.signal).name if stop.signal else "signal"
        log.error(f"interrupted by {name}: finished records were written; rerun with --resume to go on")
        return EXIT_SIGNAL.get(stop.signal, 130)  # type: ignore[arg-type]
    return EXIT_PARTIAL if engine.stats.errors else EXIT_OK


class ErrorSink:
    """Bad records: raised at once under ``fail``, written to the errors file (and logged) under ``skip``."""

    def __init__(self, path: str | None, policy: str, log: Log, stack: contextlib.ExitStack, append: bool):
        self.policy = policy
        self.log = log
        self.seen = done_errors(path) if append else set()  # a rerun with --resume does not repeat them
        self.writer = JsonlWriter(stack.enter_context(closing_output(open_output(path, append)))) if path \
            else None

    def report(self, error: InputError) -> None:
        if self.policy == "fail":
            raise error
        self.log.warning(f"skipped {error}")
        if self.writer and (error.source, error.line) not in self.seen:
            self.writer.write(error_record(error))
            self.writer.flush()


def finish_job(stats: Stats, files: JobFiles, backend: Backend, log: Log, code: int,
               processes: int = 1) -> None:
    """The summary line on stderr and the metrics file; ``exit_code`` is there for wrappers whose launcher
    (torchrun, accelerate launch) turns every failure into 1."""
    report = stats.report()
    log.info(summary_line(report), **{"summary": report})
    if files.metrics_out:
        payload = {**report, "exit_code": code, "processes": processes, "model": backend.describe(),
                   "inputs": list(files.inputs) or ["-"]}
        try:
            Path(files.metrics_out).parent.mkdir(parents=True, exist_ok=True)
            Path(files.metrics_out).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise DataError(f"{files.metrics_out}: cannot write the metrics ({exc.strerror or exc})") from exc


def summary_line(report: dict[str, Any]) -> str:
    """One human line: counts, speed, padding, and ROUGE when references were present."""
    line = (f"{report['records']} summarized, {report['errors']} errors, {report['truncated']} truncated, "
            f"{report['resumed']} resumed in {report['seconds']:.1f} s: {report['dialogues_per_second']:.2f} "
            f"dialogues/s")
    if report.get("padding_efficiency") is not None:
        line += f", padding efficiency {report['padding_efficiency']:.2f}"
    if "rouge" in report:
        scores = report["rouge"]
        line += " | ROUGE-1/2/L/Lsum " + " / ".join(f"{scores[k]:.2f}" for k in ("rouge1", "rouge2", "rougeL",
                                                                                   "rougeLsum"))
    return line


@contextlib.contextmanager
def closing_output(stream: Any) -> Iterator[Any]:
    """Close a file output at the end; stdout is only flushed."""
    try:
        yield stream
    finally:
        if stream is not sys.stdout:
            stream.close()
        else:
            stream.flush()


@contextlib.contextmanager
def progress_bar(enabled: bool) -> Iterator[Any]:
    """A tqdm bar on stderr as an ``update(n)`` callable, or a no-op."""
    if not enabled:
        yield lambda n: None
        return
    from tqdm import tqdm

    with tqdm(unit="dlg", desc="summarizing", dynamic_ncols=True) as bar:
        yield bar.update
