"""Find a model on disk: a local folder, the Hugging Face cache, or (when reachable) the Hub.

Offline, huggingface_hub retries for about half a minute before it gives up; a cron
job deserves a one-line answer in a second or two instead.
"""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlparse

from ..config import MODEL_ENV
from ..errors import ModelError

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
WANTED_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "model.bin"]  # model.bin: CTranslate2
PROBE_SECONDS = 3.0


def resolve_model(name: str, allow_pickle: bool = False) -> str:
    """A local folder for ``name``: the folder itself, or a Hub snapshot (cached or fetched)."""
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    if not HUB_ID.match(name) or name.startswith((".", "/", "~")):
        raise ModelError(f"model folder '{name}' does not exist; pass --model DIR or set {MODEL_ENV}")
    cached = cached_snapshot(name)
    if cached:
        return cached
    reason = hub_unreachable()
    if reason:
        raise ModelError(
            f"model '{name}' is not cached and the Hugging Face Hub is unreachable ({reason}); "
            f"pass --model DIR or set {MODEL_ENV} to a local model folder"
        )
    return download(name, WANTED_FILES + (["*.bin"] if allow_pickle else []))


def cached_snapshot(repo_id: str) -> str | None:
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, allow_patterns=WANTED_FILES, local_files_only=True)
    except Exception:  # not cached, in any of the ways huggingface_hub reports it
        return None


def hub_unreachable() -> str | None:
    """Why the Hub cannot be reached, or None when a TCP connection succeeds."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return "HF_HUB_OFFLINE is set"
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname or "", port), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        return f"{endpoint.hostname}: {exc.strerror or exc}"
    return None


def download(repo_id: str, patterns: list[str]) -> str:
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(repo_id, allow_patterns=patterns)
    except Exception as exc:
        raise ModelError(f"cannot download model '{repo_id}': {exc}") from exc
