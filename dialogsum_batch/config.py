"""Typed, frozen settings for a batch run, built once from the CLI and passed down."""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "transformersbook/pegasus-samsum"  # a public Pegasus fine-tuned on SAMSum
MODEL_ENV = "DIALOGSUM_MODEL"

CACHE_ENV = "DIALOGSUM_CACHE"  # moves the cache root (conversions and downloads) elsewhere


def cache_home() -> Path:
    """The one cache root: ``$DIALOGSUM_CACHE``, else ``dialogsum_batch`` in the user cache dir (XDG)."""
    moved = os.environ.get(CACHE_ENV)
    if moved:
        return Path(moved).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    user = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"  # the XDG spec ignores relative paths
    return user / "dialogsum_batch"


def downloads_dir() -> Path:
    """Where corpora fetched by URL are kept (once, verified), under the cache root."""
    return cache_home() / "downloads"


# ``evaluate``'s defaults, for the library function, the subcommand and the Invoke task alike.
EVAL_SPLIT = "test"  # the corpus split scored
EVAL_OUTPUT_DIR = "runs/eval"  # predictions, metrics, report and plot go here
EVAL_BOOTSTRAP = 1000  # resamples for the 95% intervals


@dataclass(frozen=True)
class FieldNames:
    """Which JSON fields hold the dialogue, the id and the reference summary."""

    text: str = "dialogue"
    id: str = "id"
    reference: str = "summary"


@dataclass(frozen=True)
class DecodeSettings:
    """Decoding overrides; None keeps the model's generation_config.json value."""

    num_beams: int | None = None  # 1 = greedy; 4-8 typical for Pegasus
    max_new_tokens: int | None = None  # summary length cap in tokens (SAMSum: 64-128)
    length_penalty: float | None = None  # >1 favours longer beams, <1 shorter
    no_repeat_ngram_size: int | None = None  # 0 = off; 3 stops phrase loops

    def overrides(self) -> dict[str, float | int]:
        """The settings the user set, as generate() keyword arguments."""
        values = {
            "num_beams": self.num_beams,
            "max_new_tokens": self.max_new_tokens,
            "length_penalty": self.length_penalty,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
        }
        return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class BatchSettings:
    """How records are windowed, sorted and grouped into batches."""

    batch_tokens: int = 8192  # padded source tokens per batch (rows x longest row)
    max_batch_size: int = 64  # rows per batch, whatever their length
    sort_window: int = 2048  # records held at once and sorted by length (memory bound)
    unordered: bool = False  # write results as batches finish instead of in input order
    max_wait: float = 1.0  # seconds a record may wait for its window to fill while input runs dry; 0 = no limit


@dataclass(frozen=True)
class LongSettings:
    """What becomes of a dialogue longer than the model's source limit."""

    mode: str = "truncate"  # truncate: truncated at the limit (flagged); chunk: summarize pieces, then their summaries
    overlap: int = 1  # chunk: turns repeated at the start of the next piece, so a reply keeps its question
    target: int = 128  # chunk: joined piece summaries longer than this many tokens are summarized again


@dataclass(frozen=True)
class ChatSettings:
    """How chat exports (WhatsApp, Slack, Telegram, Discord) and subtitles become dialogues."""

    gap_minutes: float = 30.0  # a silence longer than this starts a new dialogue; 30-120 suits most chats


@dataclass(frozen=True)
class ModelSettings:
    """Which model to load and how."""

    name: str = DEFAULT_MODEL  # local folder or Hub id
    backend: str = "auto"  # auto (backends/choice.py: CTranslate2 float32 on a CPU) | transformers | ctranslate2
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | bfloat16 (float16 only when forced)
    force_dtype: bool = False  # allow float16 despite Pegasus overflowing in it
    max_source_length: int | None = None  # None: 1024 or the model's limit, whichever is lower
    trust_remote_code: bool = False  # run code shipped with a Hub model
    allow_pickle: bool = False  # load *.bin (pickle) weights when no safetensors exist
    threads: int = 0  # CPU threads for inference; 0 = automatic: 1 for small models, else the idle cores
    # CTranslate2 only: a transformers folder is converted (once, into the cache) with these weights; a
    # CTranslate2 folder is loaded with this compute type. None: float32 for conversions (transformers fp32's
    # summaries), the folder's own type. int8 is --fast. Set under --backend auto, it picks CTranslate2.
    quantization: str | None = None


@dataclass(frozen=True)
class ShardSettings:
    """This run's share of a job split over hosts (``--shard``): shard ``index`` of ``count``."""

    index: int = 1  # 1..count
    count: int = 1  # shards in all
    by: str = "auto"  # file: whole files per shard; record: ids by hash; auto: file when there are >= count files
    origin: str = "--shard"  # where index and count came from (an option, a scheduler variable), for the log


@dataclass(frozen=True)
class RaySettings:
    """Where and how a job runs on Ray (``dialogsum-batch ray``): the cluster and the actors' sizes."""

    address: str | None = None  # a running cluster (host:port, ray://...); None: RAY_ADDRESS, else a local Ray
    workers: int = 0  # model actors; 0: as many as the CPUs (GPUs) allow, one CPU left for reading
    cpus_per_worker: float = 1.0  # logical CPUs each actor holds; also its inference threads (rounded up)
    gpus_per_worker: float = 0.0  # GPUs each actor holds (Ray sets CUDA_VISIBLE_DEVICES); fractions share one
    batch_size: int = 256  # rows Ray hands an actor at a time; sorted and cut by tokens inside (64-1024)


@dataclass(frozen=True)
class RunSettings:
    """Everything a batch run needs apart from its inputs and outputs."""

    model: ModelSettings = field(default_factory=ModelSettings)
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)
    long: LongSettings = field(default_factory=LongSettings)
    fields: FieldNames = field(default_factory=FieldNames)
    keep_fields: tuple[str, ...] = ()  # input fields copied to the output ("*" = all)
    on_error: str = "fail"  # fail | skip
    shard: ShardSettings | None = None  # None: the whole input
    chats: ChatSettings = field(default_factory=ChatSettings)  # chat exports split into dialogues


# ---------------------------------------------------------------------------- options by name

# Every keyword option of the Python API and of the command, mapped to the settings field it sets: the name
# a user types is written here once, and its default is the dataclass's (``default_of``), nowhere else.
SECTIONS = {
    "model": ModelSettings,
    "decode": DecodeSettings,
    "batch": BatchSettings,
    "long": LongSettings,
    "fields": FieldNames,
    "chats": ChatSettings,
    "run": RunSettings,
}
OPTION_FIELDS: dict[str, tuple[str, str]] = {
    "model": ("model", "name"),
    **{name: ("model", name) for name in ("backend", "device", "dtype", "force_dtype", "max_source_length")},
    **{name: ("model", name) for name in ("trust_remote_code", "allow_pickle", "threads", "quantization")},
    **{name: ("decode", name) for name in ("num_beams", "max_new_tokens", "length_penalty", "no_repeat_ngram_size")},
    **{name: ("batch", name) for name in ("batch_tokens", "max_batch_size", "sort_window", "unordered", "max_wait")},
    "long": ("long", "mode"),
    "long_overlap": ("long", "overlap"),
    "long_target": ("long", "target"),
    "text_field": ("fields", "text"),
    "id_field": ("fields", "id"),
    "reference_field": ("fields", "reference"),
    "gap_minutes": ("chats", "gap_minutes"),
    **{name: ("run", name) for name in ("keep_fields", "on_error", "shard")},
}


def default_of(option: str) -> Any:
    """The default of a keyword option, read from its settings dataclass."""
    section, name = OPTION_FIELDS[option]
    found = next(f for f in fields(SECTIONS[section]) if f.name == name)
    return found.default if found.default is not MISSING else found.default_factory()  # type: ignore[misc]


def run_settings(**options: Any) -> RunSettings:
    """RunSettings from keyword options named as in ``OPTION_FIELDS``; unset ones keep their defaults.

    Raises TypeError naming the known options for a name that is none of them, as a mistyped keyword
    argument of a function would.
    """
    unknown = sorted(set(options) - set(OPTION_FIELDS))
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(OPTION_FIELDS))}")
    grouped: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
    for option, value in options.items():
        section, name = OPTION_FIELDS[option]
        grouped[section][name] = tuple(value) if option == "keep_fields" else value
    parts = {section: SECTIONS[section](**grouped[section]) for section in SECTIONS if section != "run"}
    return RunSettings(**parts, **grouped["run"])
