"""A batch job in one process: lock, resume, read, summarize, write, report."""

from __future__ import annotations

import contextlib

from ..backends import Backend, serving
from ..config import RunSettings
from ..logs import Log
from .engine import Interrupted
from .job import (
    Ending,
    JobFiles,
    StopFlag,
    check_inputs,
    claim,
    exit_code,
    finish_job,
    interrupted,
    metrics_kept,
    open_writer,
    progress_bar,
    selected_input,
    stdin_hint,
)
from .outputs import Stats
from .summarizer import Summarizer


def run_local(
    files: JobFiles, settings: RunSettings, log: Log, progress: bool = False, backend: Backend | None = None
) -> tuple[int, Stats]:
    """Run the job under its lock; the backend is loaded here unless one is given (tools)."""
    with metrics_kept(files, settings, log) as ending:
        code = _run(files, settings, log, progress, backend, ending)
    return code, ending.stats


def _run(
    files: JobFiles, settings: RunSettings, log: Log, progress: bool, backend: Backend | None, ending: Ending
) -> int:
    stop = StopFlag()
    with contextlib.ExitStack() as stack:
        resumed = claim(files, stack, log, ending)  # before the model loads: a foreign output fails in a second
        check_inputs(files, settings.on_error)  # before the model loads: a typo fails in a second
        stdin_hint(files, log)
        stack.enter_context(stop.installed())
        bar = stack.enter_context(progress_bar(progress, files, settings))  # at once, "loading model…"
        summarizer = Summarizer.from_settings(settings, backend, log=log.info)
        backend = ending.backend = summarizer.backend
        log.info(f"model {settings.model.name} on {backend.device} ({serving(backend)})")
        bar.started()
        writer = open_writer(files, settings, resumed, log, bar, stack, ending)
        feed, items = selected_input(files, settings, resumed, writer.stats, stop, log, stack)
        # A stop while the input is stalled ends the input (feed.stopped): the records taken are still finished.
        engine = summarizer.engine(should_stop=lambda: stop() and not feed.stopped, log=log.warning)
        try:
            writer.write(engine.run(items))
            code = interrupted(stop.signal, log, files.output) if feed.stopped else exit_code(writer)
            if not feed.stopped:
                bar.finish()
        except Interrupted:
            code = interrupted(stop.signal, log, files.output)
        finally:
            writer.stats.engine.add(engine.counts)
    finish_job(writer.stats, log, ending, code)
    return code
