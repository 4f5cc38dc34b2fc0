"""The Hugging Face Hub as this project meets it: what an id looks like, whether the Hub answers, and the
known places data lives (SAMSum's own archive, its checksum, mirrors of ids that vanished).

Offline, huggingface_hub and datasets retry for about half a minute before they give up; a cron job deserves
a one-line answer in a second or two instead, so every caller asks :func:`hub_unreachable` first. Nothing
here imports a Hugging Face library.
"""

from __future__ import annotations

import http.client
import os
import re
import urllib.error
import urllib.request

from .errors import first_line

# "org/name", or a legacy bare name ("t5-small"): what the Hub accepts as a model or dataset id. Each part
# starts with a letter or digit, so a path such as ./run, /srv/model or ~/model never passes for one.
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")

DEFAULT_ENDPOINT = "https://huggingface.co"
# Any of these set to a true value means "no network", for models and datasets alike: huggingface_hub reads
# HF_HUB_OFFLINE (and the older TRANSFORMERS_OFFLINE), datasets HF_DATASETS_OFFLINE. They are read at each
# call; the libraries read them once, at import.
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
TRUE_VALUES = frozenset({"1", "ON", "YES", "TRUE"})
PROBE_SECONDS = 3.0  # a Hub that has not answered by then is treated as out of reach

# The SAMSum authors' archive (train.json, val.json, test.json), as the paper's arXiv source ships it.
SAMSUM_CORPUS_URL = "https://arxiv.org/src/1911.12237v2/anc/corpus.7z"

# Hub ids that no longer resolve, and where the same data lives now (keys are lower-case).
# knkarthick/samsum is the community mirror people moved to when Samsung/samsum went 404.
HUB_REDIRECTS: dict[str, str] = {
    "samsung/samsum": "knkarthick/samsum",
    "samsum": "knkarthick/samsum",
}

# Size and sha256 of downloads whose bytes are known, checked before a file is cached (and on reuse).
# SAMSum's corpus.7z: the download_checksums that huggingface/datasets recorded for this URL in
# datasets/samsum/dataset_infos.json (commit 5afdbe0f).
KNOWN_DOWNLOADS: dict[str, tuple[int, str]] = {
    SAMSUM_CORPUS_URL: (2_944_100, "a97674c66726f66b98a08ca5e8868fb8af9d4843f2b05c4f839bc5cfe91e8899"),
}


def is_hub_id(text: str) -> bool:
    """Whether ``text`` has the shape of a Hub model or dataset id (it may still name nothing)."""
    return HUB_ID.match(text) is not None


def resolve_hub_id(name: str) -> str:
    """The Hub id to load for ``name``: a working mirror for known dead ids, else ``name``."""
    return HUB_REDIRECTS.get(name.strip().lower(), name)


def hub_endpoint() -> str:
    """HF_ENDPOINT as it is now (huggingface_hub reads it once, at import: pass this on to every call)."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def hub_unreachable() -> str | None:
    """Why the Hub cannot be used now (an offline variable is set, or no answer in PROBE_SECONDS); None if it answers.

    The probe is an HTTP HEAD request, so it goes through the proxy that HTTPS_PROXY names, as the libraries do.
    """
    for variable in OFFLINE_VARIABLES:
        if os.environ.get(variable, "").strip().upper() in TRUE_VALUES:
            return f"{variable} is set"
    endpoint = hub_endpoint()
    try:
        request = urllib.request.Request(f"{endpoint}/api/models?limit=1", method="HEAD")
        urllib.request.urlopen(request, timeout=PROBE_SECONDS).close()
    except urllib.error.HTTPError:
        return None  # the Hub answered, even if with an error status
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        # ValueError: an HF_ENDPOINT that is no URL; HTTPException: something answered, but not in HTTP
        return f"no answer from {endpoint}: {first_line(getattr(exc, 'reason', None) or exc)}"
    return None
