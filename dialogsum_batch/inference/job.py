"""What every batch job does around the engine, in one process or many: its files, the lock, resume and
shard selection, the writer and errors file, signals, the summary and the exit code cron sees.

``local.py`` (one process) and ``parallel.py`` (under a launcher) build on it; ``runner.run_job`` picks one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import rouge
from ..backends import Backend
from ..config import RunSettings, ShardSettings
from ..errors import DataError
from ..logs import Log
from ..shards import describe, plan_files
from .batching import Flush
from .feed import Feed
from .outputs import (
    ErrorSink,
    JsonlWriter,
    OutputLock,
    ResultWriter,
    Resumed,
    Stats,
    closing_output,
    open_output,
    read_resumed,
    resume_limit,
    same_file,
)
from .records import MAX_LINE_BYTES, STDIN, Item, Record, expand, read_files

EXIT_OK, EXIT_PARTIAL = 0, 3  # failures take their error's exit_code (1, or 75 when locked); usage is Click's 2
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


@dataclass(frozen=True)
class JobFiles:
    """Inputs and outputs of a job; ``-`` is stdin or stdout."""

    inputs: tuple[str, ...] = ()
    input_format: str = "auto"  # auto, or a name in the formats registry (jsonl, text, csv, whatsapp, ...)
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
    named = (
        ("--output", files.output),
        ("--errors-out", files.errors_out),
        ("--metrics-out", files.metrics_out),
        ("--lock", lock_path(files)),
    )
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


def claim(files: JobFiles, stack: contextlib.ExitStack, log: Log) -> Resumed:
    """Take the output's lock (held until ``stack`` closes) and, under --resume, read what earlier runs wrote
    (``outputs.read_resumed``), before the model loads: a file that is not ours fails in a second."""
    path = lock_path(files)
    if path:
        stack.enter_context(OutputLock(path))
    if not files.resume:
        return Resumed()
    resumed = read_resumed(files.output, files.errors_out, resume_limit(files.max_line_bytes))
    if resumed.done:
        log.info(f"resuming: {sum(resumed.done.values())} records already in {files.output}")
    return resumed


# ---------------------------------------------------------------------------- selection


def shard_of(key: str, count: int) -> int:
    """A stable shard number in 1..count for a record key (the same on every host and Python)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count + 1


def item_key(item: Item) -> str:
    if isinstance(item, Record):
        return item.id
    return f"{item.error.source}:{item.error.line}"


def select(
    items: Iterable[Item | Flush],
    stats: Stats,
    done: Mapping[str, int] | None = None,
    shard: tuple[int, int] | None = None,
) -> Iterator[Item | Flush]:
    """Drop records already in the output (resume) and those of other record shards (``(index, count)``),
    counting both.

    ``done`` counts each id written so far: a repeated id is skipped only as often as it was
    written, so duplicates in the input are each summarized once. A FLUSH (a stalled input) passes through.
    """
    pending = Counter(done or {})
    for item in items:
        if isinstance(item, Flush):
            yield item
        elif shard and shard_of(item_key(item), shard[1]) != shard[0]:
            stats.other_shards += 1
        elif isinstance(item, Record) and pending[item.id] > 0:
            pending[item.id] -= 1
            stats.resumed += 1
        else:
            yield item


def selected_input(
    files: JobFiles,
    settings: RunSettings,
    resumed: Resumed,
    stats: Stats,
    stop: StopFlag,
    log: Log,
    stack: contextlib.ExitStack,
    processes: int = 1,
) -> tuple[Feed, Iterator[Item | Flush]]:
    """The job's records as the engine takes them: read ahead (``input_feed``) from this shard's files, less
    those resumed or left to other shards. The feed is returned too: ``feed.stopped`` says whether a stop ended
    the input."""
    paths, record_shard = this_shard(job_inputs(files, log), settings.shard, log)
    feed = stack.enter_context(input_feed(paths, files, settings, stop, processes, log))
    return feed, select(feed, stats, resumed.done, record_shard)


def this_shard(paths: list[str], shard: ShardSettings | None, log: Log) -> tuple[list[str], tuple[int, int] | None]:
    """The files this run opens, and the record shard it keeps of them (None: all); logs the shard and why."""
    if shard is None:
        return paths, None
    plan = plan_files(paths, shard)
    for level, line in describe(plan, shard):
        getattr(log, level)(line)
    return list(plan.paths), plan.record_shard


def open_writer(
    files: JobFiles, settings: RunSettings, resumed: Resumed, log: Log, progress: bool, stack: contextlib.ExitStack
) -> ResultWriter:
    """The job's outputs, closed with ``stack``: summaries, the errors file, the counts and the progress bar."""
    errors = ErrorSink(files.errors_out, settings.on_error, log, stack, files.resume, resumed.seen)
    records = JsonlWriter(stack.enter_context(closing_output(open_output(files.output, files.resume))))
    bar = stack.enter_context(progress_bar(progress))
    return ResultWriter(records, errors, settings.keep_fields, bar)


def input_feed(
    paths: Iterable[str],
    files: JobFiles,
    settings: RunSettings,
    stop: StopFlag,
    processes: int = 1,
    log: Log | None = None,
) -> Feed:
    """The records of ``paths``, read ahead on a thread that a stop never waits for; live input that leaves a
    record waiting ``max_wait`` seconds flushes the window read so far (a FLUSH in the feed), in one process or
    many (whose windows hold ``sort_window`` records per process). ``log`` hears which format ``auto`` chose
    where the content, not the name, decided."""
    records = read_files(paths, files.input_format, settings.fields, files.max_line_bytes, settings.chats, log)
    return Feed(records, stop, max_wait=settings.batch.max_wait, window=settings.batch.sort_window * processes)


def exit_code(stats: Stats) -> int:
    """A job that ran to the end: 0, or 3 when bad records were skipped."""
    return EXIT_PARTIAL if stats.errors else EXIT_OK


def interrupted(number: int | None, log: Log) -> int:
    """The stop's log line and exit code (130 for SIGINT, 143 for SIGTERM)."""
    name = signal.Signals(number).name if number else "signal"
    log.error(f"interrupted by {name}: finished records were written; rerun with --resume to go on")
    return EXIT_SIGNAL.get(number, 130)  # type: ignore[arg-type]


def finish_job(stats: Stats, files: JobFiles, backend: Backend, log: Log, code: int, processes: int = 1) -> None:
    """The summary line on stderr and the metrics file; ``exit_code`` is there for wrappers whose launcher
    (torchrun, accelerate launch) turns every failure into 1."""
    report = stats.report()
    log.info(summary_line(report), **{"summary": report})
    if files.metrics_out:
        payload = {
            **report,
            "exit_code": code,
            "processes": processes,
            "model": backend.describe(),
            "inputs": list(files.inputs) or ["-"],
        }
        try:
            Path(files.metrics_out).parent.mkdir(parents=True, exist_ok=True)
            Path(files.metrics_out).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise DataError(f"{files.metrics_out}: cannot write the metrics ({exc.strerror or exc})") from exc


def summary_line(report: dict[str, Any]) -> str:
    """One human line: counts, speed, padding, and ROUGE when references were present."""
    line = (
        f"{report['records']} summarized, {report['errors']} errors, {report['truncated']} truncated, "
        f"{report['resumed']} resumed in {report['seconds']:.1f} s: {report['dialogues_per_second']:.2f} "
        f"dialogues/s"
    )
    if report.get("padding_efficiency") is not None:
        line += f", padding efficiency {report['padding_efficiency']:.2f}"
    if "rouge" in report:
        line += f" | {rouge.heading()} {rouge.figures(report['rouge'])}"
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
