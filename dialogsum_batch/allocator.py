"""glibc's allocator set for a batch inference process: freed memory is kept for the next batch, not handed back.

CTranslate2 allocates each layer's buffers anew for every batch, from its worker thread. Under glibc's
defaults a large buffer is a fresh ``mmap`` and a worker thread's arena is trimmed as it frees, so every
batch faults its pages in again: 3.4 million page faults and about a quarter of the time of an int8 run
over 160 chats went to the kernel. One arena, no ``mmap`` for large blocks and no trimming keep those pages
for reuse (0.5 million faults; ``bench/results/bench_allocator.md``). The price is that a process keeps its
peak memory until it exits, which is what a batch job does anyway.

Only ``dialogsum-batch summarize`` and ``evaluate`` (the command, not the library: a program that imports
``Summarizer`` keeps its own allocator) set it, before any thread starts, and the ``dialogsum-batch ray`` job's
model actors as they start (their Ray worker has threads already, so the one-arena part may not take: int8
job 1.17x there against 1.38x locally). It is left alone where the
process's C library is not glibc, where the user tuned glibc already (``MALLOC_*`` or ``GLIBC_TUNABLES``
in the environment), and where ``DIALOGSUM_ALLOCATOR=system`` says so.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Mapping

OPT_OUT = "DIALOGSUM_ALLOCATOR"
M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8  # mallopt parameters, from glibc's malloc.h
SETTINGS = ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1))
KEPT = "glibc: one arena, no mmap, no trim"
SYSTEM = "system"
chosen = SYSTEM  # what this process runs with, for --metrics-out


def keep_freed_memory(environ: Mapping[str, str] = os.environ) -> str:
    """Set glibc's allocator to keep freed memory (module docstring), unless it is to be left alone; what the
    process runs with now: ``KEPT`` or ``SYSTEM``."""
    global chosen
    if environ.get(OPT_OUT, "").lower() == SYSTEM or platform.libc_ver()[0] != "glibc":
        return chosen
    if any(name.startswith("MALLOC_") for name in environ) or "malloc" in environ.get("GLIBC_TUNABLES", ""):
        return chosen  # the user's own tuning wins
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return chosen
    if all(mallopt(parameter, value) == 1 for parameter, value in SETTINGS):
        chosen = KEPT
    return chosen
