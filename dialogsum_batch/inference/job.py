"""What every batch job does around the engine, in one process or many: its files, the lock, resume and
shard selection, the writer and errors file, signals, the summary and the exit code cron sees.

``local.py`` (one process) and ``parallel.py`` (under a launcher) build on it; ``runner.run_job`` picks one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import allocator, rouge
from ..backends import Backend
from ..config import RunSettings, ShardSettings
from ..errors import DataError
from ..files import publish_file
from ..hub import is_hub_id
from ..logs import Log
from ..shards import describe, plan_files
from ..version import __version__
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


def check_inputs(files: JobFiles, on_error: str) -> None:
    """Before the model loads: an input that cannot be opened stops ``--on-error fail`` at once (as it would
    stop the run when reached), and any run whose inputs all fail; under ``skip`` the others go on."""
    paths = expand(files.inputs)
    failures = [f"{path}: cannot open ({problem})" for path in paths if (problem := unreadable(path))]
    if failures and (on_error == "fail" or len(failures) == len(paths)):
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise DataError(failures[0] + more)


def unreadable(path: str) -> str | None:
    """Why ``path`` cannot be read as an input, or None; never opens it (a FIFO would block until written)."""
    if path == STDIN:
        return None
    try:
        os.stat(path)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None if os.access(path, os.R_OK) else "Permission denied"  # a folder too: a format may read it (Slack)


def claim(files: JobFiles, stack: contextlib.ExitStack, log: Log, ending: Ending) -> Resumed:
    """Take the output's lock (held until ``stack`` closes), under --resume read what earlier runs wrote
    (``outputs.read_resumed``), then take the metrics file (``claim_metrics``), all before the model loads: a
    file that is not ours fails in a second."""
    path = lock_path(files)
    if path:
        stack.enter_context(OutputLock(path))
    resumed = Resumed()
    if files.resume:
        resumed = read_resumed(files.output, files.errors_out, resume_limit(files.max_line_bytes))
    claim_metrics(files, ending)
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
    files: JobFiles,
    settings: RunSettings,
    resumed: Resumed,
    log: Log,
    bar: Progress,
    stack: contextlib.ExitStack,
    ending: Ending,
) -> ResultWriter:
    """The job's outputs, closed with ``stack``: summaries, the errors file, the counts and the progress bar;
    ``ending`` reports the writer's counts however the job ends."""
    errors = ErrorSink(files.errors_out, settings.on_error, log, stack, files.resume, resumed.seen)
    records = JsonlWriter(stack.enter_context(closing_output(open_output(files.output, files.resume))))
    writer = ResultWriter(records, errors, settings.keep_fields, bar, names=settings.fields)
    ending.stats = writer.stats
    return writer


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


def exit_code(writer: ResultWriter) -> int:
    """A job that ran to the end: 0, or 3 when bad records were skipped (DataError: a field option that no
    record matched)."""
    writer.check_fields()
    return EXIT_PARTIAL if writer.stats.errors else EXIT_OK


def interrupted(number: int | None, log: Log, output: str = "-") -> int:
    """The stop's log line and exit code (130 for SIGINT, 143 for SIGTERM). Only an output file can be resumed:
    summaries sent to stdout are gone to their reader."""
    name = signal.Signals(number).name if number else "signal"
    if output == "-":
        log.error(f"interrupted by {name}: finished records were written to stdout")
    else:
        log.error(f"interrupted by {name}: finished records were written; rerun with --resume to go on")
    return EXIT_SIGNAL.get(number, 130)  # type: ignore[arg-type]


def finish_job(stats: Stats, log: Log, ending: Ending, code: int) -> None:
    """The summary line on stderr, and the code the metrics file reports."""
    report = stats.report()
    log.info(summary_line(report), **{"summary": report})
    ending.stats, ending.code = stats, code


# ---------------------------------------------------------------------------- the metrics file

EXIT_STATUS = {EXIT_OK: "ok", EXIT_PARTIAL: "partial", 130: "interrupted", 143: "interrupted", 141: "interrupted"}


@dataclass
class Ending:
    """What the metrics file says of a job, filled in as far as the job got."""

    stats: Stats = field(default_factory=Stats)
    backend: Backend | None = None
    code: int | None = None
    processes: int = 1
    owned: bool = False  # the lock was taken and an earlier run's metrics removed: --metrics-out is this run's


def claim_metrics(files: JobFiles, ending: Ending) -> None:
    """Remove an earlier run's metrics file, once this run holds the output's lock (a run turned away by the
    lock leaves the file to the run that holds it): a failure can never leave last night's "ok" behind."""
    path = metrics_path(files)
    if path is not None and path.is_file():  # a device or a FIFO (/dev/stdout) is left as it is
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise DataError(f"{files.metrics_out}: cannot replace the metrics ({exc.strerror or exc})") from exc
    ending.owned = True


@contextlib.contextmanager
def metrics_kept(files: JobFiles, settings: RunSettings, log: Log) -> Iterator[Ending]:
    """Write ``--metrics-out`` however the job ends: ``status`` ok, partial, interrupted (a signal, or stdout
    closed by its reader) or failed (with the error), and the exit code the process ends with."""
    ending = Ending()
    try:
        yield ending
    except BaseException as exc:
        if ending.owned and files.metrics_out:
            code, message = ending_of(exc)
            with contextlib.suppress(DataError):  # the job's own error is the one to report
                write_metrics(files, settings, ending, code, message)
        raise
    if ending.owned and files.metrics_out:
        write_metrics(files, settings, ending, ending.code if ending.code is not None else EXIT_OK)


def ending_of(exc: BaseException) -> tuple[int, str]:
    """The exit code and one line for a job ended by ``exc``, as the command will end."""
    if isinstance(exc, KeyboardInterrupt):
        return 130, "interrupted"
    code = getattr(exc, "exit_code", 1)
    return code, str(exc) or type(exc).__name__


def metrics_path(files: JobFiles) -> Path | None:
    """Where the metrics go, symlinks followed: the link stays, its file is what is replaced."""
    return Path(os.path.realpath(files.metrics_out)) if files.metrics_out else None


def write_metrics(files: JobFiles, settings: RunSettings, ending: Ending, code: int, error: str | None = None) -> None:
    """The metrics JSON, written whole (a temporary file renamed over it). ``exit_code`` is there for wrappers
    whose launcher (torchrun, accelerate launch) turns every failure into 1."""
    payload = {
        "status": EXIT_STATUS.get(code, "failed"),
        "exit_code": code,
        **({"error": error} if error else {}),
        **ending.stats.report(),
        "processes": ending.processes,
        "model": {**model_identity(settings), **(ending.backend.describe() if ending.backend else {})},
        "inputs": list(files.inputs) or ["-"],
        "output": files.output,
        "options": {
            "input_format": files.input_format,
            "max_line_bytes": files.max_line_bytes,
            "resume": files.resume,
            **asdict(settings),
        },
        "versions": versions(),
        "allocator": allocator.chosen,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    path = metrics_path(files)
    assert path is not None
    text = json.dumps(payload, indent=2, default=str) + "\n"
    try:
        if path.exists() and not path.is_file():  # /dev/stdout, a FIFO: written to, never replaced
            path.write_text(text, encoding="utf-8")
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        with publish_file(path) as handle:
            handle.write(text)
    except OSError as exc:
        raise DataError(f"{files.metrics_out}: cannot write the metrics ({exc.strerror or exc})") from exc


def model_identity(settings: RunSettings) -> dict[str, Any]:
    """The model as asked for: a local folder's full path, or a Hub id with the revision and commit loaded."""
    name = settings.model.name
    if Path(name).expanduser().is_dir():
        return {"name": name, "path": str(Path(name).expanduser().resolve())}
    from ..backends.resolve import cached_snapshot  # the snapshot just loaded: the cache answers, no network

    found = cached_snapshot(name, settings.model.allow_pickle) if is_hub_id(name) else None
    if found is None:
        return {"name": name}
    folder, revision = found
    return {"name": name, "hub_id": name, "revision": revision, "commit": Path(folder).name}


def versions() -> dict[str, str]:
    """dialogsum-batch's version, Python's, and those of the model libraries this process imported."""
    found = {"dialogsum-batch": __version__, "python": platform.python_version()}
    for module in ("torch", "transformers", "ctranslate2", "tokenizers"):
        if module in sys.modules:
            found[module] = getattr(sys.modules[module], "__version__", "?")
    return found


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


class Progress:
    """The stderr bar, from before the model loads to the end: in bytes of the input files (a total, a
    percentage and an ETA) when every input is a file, else in dialogues. Called with each written record."""

    def __init__(self, bar: Any = None, starts: dict[str, int] | None = None):
        self.bar = bar
        self.starts = starts  # each file's first byte in the whole input; None: count dialogues
        self.written = 0

    def started(self) -> None:
        """The model is loaded: the clock starts again, so load time never counts in the rate or the ETA."""
        if self.bar is not None:
            self.bar.set_description_str("summarizing", refresh=False)
            self.bar.reset(total=self.bar.total)

    def __call__(self, record: Record) -> None:
        if self.bar is None:
            return
        self.written += 1
        if self.starts is None:
            self.bar.update(1)
            return
        at = self.starts.get(record.source, 0) + record.offset
        self.bar.set_postfix_str(f"{self.written} dialogues", refresh=False)
        self.bar.update(max(0, at - self.bar.n))  # unordered output can come back to an earlier offset

    def finish(self) -> None:
        """The input was read to its end: the bar says so (a .gz's last bytes are its trailer)."""
        if self.bar is not None and self.starts is not None:
            self.bar.update(max(0, self.bar.total - self.bar.n))


def file_starts(paths: Iterable[str]) -> dict[str, int] | None:
    """Where each input file starts in the whole input, in bytes (the total under ``""``); None with stdin
    or a file whose size is unknown."""
    starts, total = {}, 0
    for path in paths:
        if path == STDIN or os.path.isdir(path):  # a pipe, or a folder (a Slack export): no byte total
            return None
        try:
            size = os.stat(path).st_size
        except OSError:
            return None
        starts[path], total = total, total + size
    return {**starts, "": total} if total else None


@contextlib.contextmanager
def progress_bar(
    enabled: bool, files: JobFiles | None = None, settings: RunSettings | None = None
) -> Iterator[Progress]:
    """A ``Progress`` on stderr showing what it waits for ("loading model…") until ``started``; a no-op when
    not ``enabled``. Bytes when every input is a file and the run reads all of them (no --shard)."""
    if not enabled:
        yield Progress()
        return
    from tqdm import tqdm

    whole = files is not None and (settings is None or settings.shard is None)
    starts = file_starts(expand(files.inputs)) if whole else None  # type: ignore[union-attr]
    sized = {"total": starts.pop(""), "unit": "B", "unit_scale": True, "unit_divisor": 1024} if starts else {}
    with tqdm(desc="loading model…", dynamic_ncols=True, smoothing=0.1, **({"unit": "dlg"} | sized)) as bar:
        yield Progress(bar, starts)


def stdin_hint(files: JobFiles, log: Log) -> None:
    """One line when the input is a terminal someone types into, so a waiting run does not look hung."""
    if STDIN not in expand(files.inputs):
        return
    try:
        typing = sys.stdin.isatty()
    except (AttributeError, ValueError):
        return
    if typing:
        log.info("reading dialogues from the terminal: type or paste them, then Ctrl-D (or give FILE arguments)")
