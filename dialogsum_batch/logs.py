"""Messages for people on stderr: timestamped lines, as text or JSON for log collectors.

Progress bars are for a person watching a terminal. Under cron, CI or a pipe a tqdm bar is a
stream of carriage returns; there ``library_bars`` hides the bars of transformers, datasets and
huggingface_hub, and the callers log one line per step instead. ``quiet_transformers`` keeps
transformers' advisory warnings off stderr too.

``Log`` is the stderr writer; a function that only reports takes a ``Say``, any callable taking one
line (``Log().info``, ``print``, ``lines.append`` in a test).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import IO, Any

Say = Callable[[str], Any]  # where a function reports its progress, one line a call


class Log:
    """Writes ``info`` / ``warning`` / ``error`` lines to stderr; ``quiet`` keeps only errors."""

    def __init__(self, fmt: str = "text", quiet: bool = False, stream: IO[str] | None = None):
        self.fmt = fmt
        self.quiet = quiet
        self.stream = stream

    def info(self, message: str, **fields: Any) -> None:
        if not self.quiet:
            self._write("info", message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        if not self.quiet:
            self._write("warning", message, fields)

    def error(self, message: str, **fields: Any) -> None:
        self._write("error", message, fields)

    def _write(self, level: str, message: str, fields: dict[str, Any]) -> None:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        if self.fmt == "json":
            line = json.dumps({"time": stamp, "level": level, "message": message, **fields}, ensure_ascii=False)
        else:
            line = f"{stamp} {level}: {message}"
        stream = self.stream or sys.stderr
        bars = sys.modules.get("tqdm")
        if bars is not None and bars.tqdm._instances:  # a bar is drawn: clear it, write the line, draw it again
            bars.tqdm.write(line, file=stream)
            stream.flush()
            return
        print(line, file=stream, flush=True)


def stderr_is_terminal() -> bool:
    """Whether stderr is a terminal someone watches (not a file, pipe, cron mail or CI log)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


@contextmanager
def library_bars(show: bool | None = None) -> Iterator[bool]:
    """The tqdm bars of transformers, huggingface_hub and datasets, on or off for the block.

    ``show=None`` leaves them on only where stderr is a terminal; ``False`` hides them anyway.
    ``transformers`` and ``datasets`` are quieted once imported (every module that maps or loads
    with them imports them first), so a run that never needs them does not pay for importing them
    (transformers brings torch: seconds). A transformers imported inside the block starts with its
    bars off, as it copies huggingface_hub's setting when first imported. Settings found on
    entry come back on exit. Yields whether bars are shown.
    """
    if stderr_is_terminal() if show is None else show:
        yield True
        return
    from huggingface_hub import utils as hub

    hf_logging = sys.modules.get("transformers.utils.logging")
    datasets = sys.modules.get("datasets")
    transformers_on = hf_logging is not None and hf_logging.is_progress_bar_enabled()
    hub_off = hub.are_progress_bars_disabled()
    datasets_on = datasets is not None and datasets.is_progress_bar_enabled()
    if transformers_on:
        hf_logging.disable_progress_bar()  # huggingface_hub's bars go with it
    elif not hub_off:
        hub.disable_progress_bars()
    if datasets_on:
        datasets.disable_progress_bars()
    try:
        yield False
    finally:
        imported = hf_logging is None and sys.modules.get("transformers.utils.logging")
        if transformers_on or (imported and not hub_off):  # one imported inside: on, as it would have started
            (hf_logging or imported).enable_progress_bar()  # turns huggingface_hub's on too; set below as it was
        if hub.are_progress_bars_disabled() != hub_off:
            (hub.disable_progress_bars if hub_off else hub.enable_progress_bars)()
        if datasets_on:
            datasets.enable_progress_bars()


def quiet_transformers() -> None:
    """transformers' advisory warnings off for the process (errors still show): stderr belongs to our own log
    and progress bar. Its tqdm bars are ``library_bars``' business."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
