"""The one entry to a batch job: one process, or every process of a launcher."""

from __future__ import annotations

from ..backends import Backend
from ..config import RunSettings
from ..logs import Log
from .job import JobFiles
from .local import run_local
from .outputs import Stats
from .parallel import detect_world, run_parallel


def run_job(
    files: JobFiles, settings: RunSettings, log: Log, progress: bool = False, backend: Backend | None = None
) -> tuple[int, Stats]:
    """Run the job and return its exit code and counts.

    Under ``accelerate launch`` / ``torchrun`` (WORLD_SIZE > 1) every process calls this and the job is
    data-parallel (``parallel.py``): the main process alone writes, and all return one code.
    """
    run = run_parallel if detect_world().size > 1 else run_local
    return run(files, settings, log, progress, backend)
