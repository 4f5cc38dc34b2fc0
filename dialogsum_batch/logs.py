"""Messages for people on stderr: timestamped lines, as text or JSON for log collectors."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from typing import IO, Any


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
        print(line, file=stream, flush=True)
