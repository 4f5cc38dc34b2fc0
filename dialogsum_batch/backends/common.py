"""What every backend shares, without importing torch: the values a backend hands back, source encoding,
output cleanup, CPU threads. The package re-exports the values; backends import them from here."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_SOURCE_LIMIT = 1024
CHARS_PER_TOKEN_CAP = 32  # absurdly long inputs are trimmed to this many characters per token before tokenizing
ENCODE_CHUNK = 256  # texts per tokenizer call
GENERATION_KEYS = ("num_beams", "max_new_tokens", "max_length", "min_length", "length_penalty", "no_repeat_ngram_size")
SMALL_MODEL_PARAMETERS = 20_000_000  # below this, per-op overhead dominates and extra threads only contend
SAMPLE_SECONDS = 0.25  # how long --threads 0 watches /proc/stat: ~25 clock ticks per CPU at 100 Hz
PROC_STAT = Path("/proc/stat")


@dataclass(frozen=True)
class Encoded:
    """A dialogue's source token ids, already truncated to the model's limit."""

    ids: list[int]
    truncated: bool


@dataclass(frozen=True)
class Generated:
    """One summary and how many tokens it took."""

    text: str
    tokens: int


class OutOfMemory(Exception):
    """The accelerator ran out of memory on a batch; the caller splits it and retries."""


def is_ctranslate2_dir(path: str) -> bool:
    """A CTranslate2 model folder holds model.bin beside config.json."""
    folder = Path(path)
    return (folder / "model.bin").is_file() and (folder / "config.json").is_file()


def encode_texts(tokenizer: Any, texts: Sequence[str], limit: int) -> list[Encoded]:
    """Token ids per text, truncated to ``limit`` (keeping the final </s>) and flagged when truncated.

    The fast tokenizer runs over slices of ENCODE_CHUNK texts: as quick as one call for the
    whole window, but its per-token bookkeeping (offsets, token strings) never exists for
    more than a slice at once (a 2,048-record window: 13 MiB at peak instead of 60).

    Texts are stripped first: SentencePiece drops leading and trailing whitespace, but the fast
    Pegasus tokenizer turns a trailing space or line break into an extra ``▁`` token.
    """
    eos = tokenizer.eos_token_id
    encoded: list[Encoded] = []
    for start in range(0, len(texts), ENCODE_CHUNK):
        capped = [text.strip()[: limit * CHARS_PER_TOKEN_CAP] for text in texts[start : start + ENCODE_CHUNK]]
        rows = tokenizer(capped, truncation=True, max_length=limit + 1, return_attention_mask=False)
        encoded.extend(truncate(ids, limit, eos) for ids in rows["input_ids"])
    return encoded


def truncate(ids: list[int], limit: int, eos: int | None) -> Encoded:
    """Ids tokenized to ``limit + 1`` are longer than the limit: truncate them, ending on </s>."""
    if len(ids) <= limit:
        return Encoded(ids, False)
    tail = [eos] if eos is not None else []
    return Encoded(ids[: limit - len(tail)] + tail, True)


def generation_summary(generation: Any) -> dict[str, Any]:
    """The decoding settings worth reporting, from a GenerationConfig."""
    return {key: getattr(generation, key, None) for key in GENERATION_KEYS}


def clean(text: str) -> str:
    """Pegasus-cnn_dailymail writes <n> between sentences: make it a line break."""
    return "\n".join(part.strip() for part in text.split("<n>")).strip()


def usable_cpus() -> set[int]:
    """CPU numbers this process may run on (its affinity mask where the OS has one)."""
    try:
        return set(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return set(range(os.cpu_count() or 1))


def usable_cores() -> int:
    """How many cores this process may run on."""
    return len(usable_cpus())


# ----------------------------------------------------------------------------- --threads 0


def auto_threads(parameters: int, sample_seconds: float = SAMPLE_SECONDS) -> int:
    """CPU threads for ``--threads 0``, both backends alike.

    One for small models, whose matrices are too small to share out: two threads ran the tiny model
    several times slower than one (transformers and CTranslate2 alike, even on an idle machine).
    Larger models get the usable cores that are idle *now*, at least one: threads on busy cores
    spin-wait (on two cores shared with another job the mid-size model ran 2x slower on two threads
    than on one). Idleness is sampled from /proc/stat over a fraction of a second, not read from the
    1-minute load average, which lags: right after a job ended it still counted that job's core as
    busy and picked one thread on an idle machine (1.57x slower than two).
    """
    if parameters < SMALL_MODEL_PARAMETERS:
        return 1
    cpus = usable_cpus()
    return max(1, min(len(cpus), round(idle_cores_now(cpus, sample_seconds))))


def idle_cores_now(cpus: set[int], sample_seconds: float = SAMPLE_SECONDS) -> float:
    """How many of ``cpus`` are idle: /proc/stat sampled twice, else (not Linux) cores minus the load average."""
    try:
        before = cpu_times(PROC_STAT.read_text())
        time.sleep(sample_seconds)
        after = cpu_times(PROC_STAT.read_text())
    except OSError:
        before = after = {}
    if any(cpu in before and cpu in after for cpu in cpus):
        return idle_cores(before, after, cpus)
    return idle_from_load_average(len(cpus))


def cpu_times(stat: str) -> dict[int, tuple[int, int]]:
    """(idle, total) clock ticks per CPU from /proc/stat's ``cpuN`` lines; idle counts iowait too.

    The first eight fields (user nice system idle iowait irq softirq steal) add up to the total;
    guest time is already inside user and nice.
    """
    times: dict[int, tuple[int, int]] = {}
    for line in stat.splitlines():
        name, _, rest = line.partition(" ")
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue  # the aggregate "cpu" line and everything else
        ticks = [int(field) for field in rest.split()[:8]]
        times[int(name[3:])] = (sum(ticks[3:5]), sum(ticks))
    return times


def idle_cores(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]], cpus: set[int]) -> float:
    """How many of ``cpus`` were idle between two snapshots: each CPU's idle share, added up."""
    idle = 0.0
    for cpu in cpus & before.keys() & after.keys():
        idle_ticks = after[cpu][0] - before[cpu][0]
        ticks = after[cpu][1] - before[cpu][1]
        idle += idle_ticks / ticks if ticks > 0 else 1.0  # no tick counted at all: the CPU slept throughout
    return idle


def idle_from_load_average(cores: int) -> float:
    """Cores minus the 1-minute load average: where /proc/stat is missing (macOS, BSD)."""
    try:
        return cores - os.getloadavg()[0]
    except (OSError, AttributeError):  # no load average either
        return float(cores)
