"""A whole batch job: lock, resume, read, summarize, write, report; returns the exit code cron sees."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends import Backend, load_backend
from ..config import RunSettings
from .engine import Engine, Interrupted, Stats, select
from ..errors import DataError, InputError
from .feed import Feed
from ..logs import Log
from .outputs import (ERROR_KEYS, OUTPUT_KEYS, JsonlWriter, OutputLock, closing_output, done_errors,
                      error_record, open_output, same_file, scan_written)
from .records import MAX_LINE_BYTES, STDIN, expand, read_files

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


def written_files(files: JobFiles) -> list[tuple[str, str]]:
    """(option, path) of every file the job writes, stdout left out; the default OUTPUT.lock counts as --lock."""
    named = (("--output", files.output), ("--errors-out", files.errors_out), ("--metrics-out", files.metrics_out),
             ("--lock", lock_path(files)))
    return [(name, path) for name, path in named if path not in (None, "-")]


def job_inputs(files: JobFiles, log: Log) -> list[str]:
    """The inputs with globs expanded once, less every file this job writes.

    ``'out/*.jsonl' -o out/all.jsonl`` would otherwise read its own output, for ever as it grows; and a glob
    expanded again later could match the output created in between.
    """
    written = [path for _, path in written_files(files)]
    inputs: list[str] = []
    own: list[str] = []
    for path in expand(files.inputs):
        (own if path != STDIN and any(same_file(path, w) for w in written) else inputs).append(path)
    if own:
        log.warning(f"not reading {', '.join(own)}: written by this job")
    return inputs


def resume_limit(files: JobFiles) -> int:
    """Longest line a resumed output may hold: its input line escaped (up to 6x) and the summary."""
    return 8 * max(files.max_line_bytes, MAX_LINE_BYTES)


Resumed = tuple[Counter[str], set[tuple[str, int | None]]]  # ids in OUTPUT (how often), (source, line) of errors


def read_resumed(files: JobFiles, log: Log) -> Resumed:
    """What earlier runs wrote to OUTPUT and to the errors file, for --resume.

    Both files are checked whole before either changes (a torn last line is cut only then), and before the
    model loads: a file that is not ours fails at once, as one line, and is left as it was.
    """
    if not files.resume:
        return Counter(), set()
    output = scan_written(files.output, OUTPUT_KEYS, resume_limit(files))
    errors = scan_written(files.errors_out, ERROR_KEYS) if files.errors_out else None
    for written in (output, errors):
        if written is not None:
            written.cut()
    done = Counter(str(key) for key, in output.rows)
    if done:
        log.info(f"resuming: {sum(done.values())} records already in {files.output}")
    return done, set(errors.rows) if errors else set()  # type: ignore[arg-type]


def run_job(files: JobFiles, settings: RunSettings, log: Log, progress: bool = False,
            backend: Backend | None = None) -> tuple[int, Stats]:
    """Run the job under its lock; the backend is loaded here unless one is given (tests, tools).

    Under ``accelerate launch`` / ``torchrun`` (WORLD_SIZE > 1) every process calls this and the job is
    data-parallel (dialogsum_batch.inference.parallel); the main process alone writes, and all return one code.
    """
    from .parallel import detect_world, run_parallel

    if detect_world().size > 1:
        return run_parallel(files, settings, log, progress, backend)
    path = lock_path(files)
    stop = StopFlag()
    with OutputLock(path) if path else contextlib.nullcontext(), stop.installed():
        done, seen = read_resumed(files, log)
        backend = backend or load_backend(settings.model, settings.decode, log=log.info)
        log.info(f"model {settings.model.name} on {backend.device} ({backend.name})")
        return _summarize(files, settings, backend, (done, seen), log, progress, stop)


def _summarize(files: JobFiles, settings: RunSettings, backend: Backend, resumed: Resumed, log: Log,
               progress: bool, stop: StopFlag) -> tuple[int, Stats]:
    done, seen = resumed
    with contextlib.ExitStack() as stack:
        errors = ErrorSink(files.errors_out, settings.on_error, log, stack, files.resume, seen)
        writer = JsonlWriter(stack.enter_context(closing_output(open_output(files.output, files.resume))))
        bar = stack.enter_context(progress_bar(progress))
        feed = stack.enter_context(input_feed(files, settings, stop, log))
        # A stop while the input is stalled ends the input (feed.cut): the records taken are still finished.
        engine = Engine(backend, settings, writer.write, errors.report, writer.flush,
                        lambda: stop() and not feed.cut, log.warning, bar)
        code = _execute(engine, select(feed, engine.stats, done, settings.shard), stop, feed, log)
    finish_job(engine.stats, files, backend, log, code)
    return code, engine.stats


def input_feed(files: JobFiles, settings: RunSettings, stop: StopFlag, log: Log) -> Feed:
    """The job's records, read ahead on a thread that a stop never waits for; live input that leaves a record
    waiting ``max_wait`` seconds cuts the window read so far (a CUT in the feed), in one process or many."""
    records = read_files(job_inputs(files, log), files.input_format, settings.fields, files.max_line_bytes)
    return Feed(records, stop, max_wait=settings.batch.max_wait)


def _execute(engine: Engine, items: Any, stop: StopFlag, feed: Feed, log: Log) -> int:
    try:
        engine.run(items)
    except Interrupted:
        return interrupted(stop.signal, log)
    if feed.cut:  # stopped while waiting for input: every record read was written
        return interrupted(stop.signal, log)
    return EXIT_PARTIAL if engine.stats.errors else EXIT_OK


def interrupted(number: int | None, log: Log) -> int:
    """The stop's log line and exit code (130 for SIGINT, 143 for SIGTERM)."""
    name = signal.Signals(number).name if number else "signal"
    log.error(f"interrupted by {name}: finished records were written; rerun with --resume to go on")
    return EXIT_SIGNAL.get(number, 130)  # type: ignore[arg-type]


class ErrorSink:
    """Bad records: raised at once under ``fail``, written to the errors file (and logged) under ``skip``."""

    def __init__(self, path: str | None, policy: str, log: Log, stack: contextlib.ExitStack, append: bool,
                 seen: set[tuple[str, int | None]] | None = None):
        self.policy = policy
        self.log = log
        # Those already in the file (``seen``, else read here): a rerun with --resume does not repeat them.
        self.seen = seen if seen is not None else done_errors(path) if append else set()
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
def progress_bar(enabled: bool) -> Iterator[Any]:
    """A tqdm bar on stderr as an ``update(n)`` callable, or a no-op."""
    if not enabled:
        yield lambda n: None
        return
    from tqdm import tqdm

    with tqdm(unit="dlg", desc="summarizing", dynamic_ncols=True) as bar:
        yield bar.update
