"""A batch job in one process: lock, resume, read, summarize, write, report."""

from __future__ import annotations

import contextlib

from ..backends import Backend, serving
from ..config import RunSettings
from ..logs import Log
from .engine import Interrupted
from .job import JobFiles, StopFlag, claim, exit_code, finish_job, interrupted, open_writer, selected_input
from .outputs import Stats
from .summarizer import Summarizer


def run_local(
    files: JobFiles, settings: RunSettings, log: Log, progress: bool = False, backend: Backend | None = None
) -> tuple[int, Stats]:
    """Run the job under its lock; the backend is loaded here unless one is given (tools)."""
    stop = StopFlag()
    with contextlib.ExitStack() as stack:
        resumed = claim(files, stack, log)  # before the model loads: a foreign output fails in a second
        stack.enter_context(stop.installed())
        summarizer = Summarizer.from_settings(settings, backend, log=log.info)
        backend = summarizer.backend
        log.info(f"model {settings.model.name} on {backend.device} ({serving(backend)})")
        writer = open_writer(files, settings, resumed, log, progress, stack)
        feed, items = selected_input(files, settings, resumed, writer.stats, stop, log, stack)
        # A stop while the input is stalled ends the input (feed.stopped): the records taken are still finished.
        engine = summarizer.engine(should_stop=lambda: stop() and not feed.stopped, log=log.warning)
        try:
            writer.write(engine.run(items))
            code = interrupted(stop.signal, log) if feed.stopped else exit_code(writer.stats)
        except Interrupted:
            code = interrupted(stop.signal, log)
        finally:
            writer.stats.engine.add(engine.counts)
    finish_job(writer.stats, files, backend, log, code)
    return code, writer.stats
