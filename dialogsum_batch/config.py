"""Typed, frozen settings for a batch run, built once from the CLI and passed down."""

from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "transformersbook/pegasus-samsum"  # a public Pegasus fine-tuned on SAMSum
MODEL_ENV = "DIALOGSUM_MODEL"


def setting(default: Any, help: str) -> Any:
    """A settings field that is also a user option: its default, and the one line of help the command shows."""
    return field(default=default, metadata={"help": help})


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

    text: str = setting("dialogue", "JSON field (CSV column) holding the dialogue.")
    id: str = setting(
        "id", "Field holding the record id (none: FILE:LINE); a field other than 'id' must be in every record."
    )
    reference: str = setting("summary", "Field holding reference summaries (a string or a list), for ROUGE.")


@dataclass(frozen=True)
class DecodeSettings:
    """Decoding overrides; None keeps the model's generation_config.json value."""

    num_beams: int | None = setting(None, "Beam size: 1 greedy, 4-8 typical for Pegasus  [default: the model's]")
    max_new_tokens: int | None = setting(None, "Summary length cap in tokens (SAMSum: 64-128)  [default: the model's]")
    length_penalty: float | None = setting(None, "Beam length penalty: >1 longer, <1 shorter  [default: the model's]")
    no_repeat_ngram_size: int | None = setting(
        None, "Block repeated n-grams; 0 off, 3 stops loops  [default: the model's]"
    )

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

    batch_tokens: int = setting(8192, "Padded source tokens per batch (rows x longest row).")
    max_batch_size: int = setting(64, "Records per batch at most, whatever their length.")
    sort_window: int = setting(2048, "Records read ahead and sorted by length (the memory bound).")
    unordered: bool = setting(False, "Write results as batches finish, not in input order.")
    max_wait: float = setting(
        1.0,
        "Live input: batch the records read so far once the oldest has waited this long and no more is ready; "
        "0 always waits for full windows.",
    )


@dataclass(frozen=True)
class LongSettings:
    """What becomes of a dialogue longer than the model's source limit."""

    mode: str = setting(
        "truncate",
        "A dialogue longer than --max-source-length: truncate it (flagged truncated), or summarize it in pieces "
        "at turn boundaries and then their joined summaries (chunks: N).",
    )
    overlap: int = setting(
        1, "--long chunk: turns repeated at the start of the next piece (a reply keeps its question)."
    )
    target: int = setting(
        128, "--long chunk: joined piece summaries longer than this many tokens are summarized again."
    )


@dataclass(frozen=True)
class ChatSettings:
    """How chat exports (WhatsApp, Slack, Telegram, Discord) and subtitles become dialogues."""

    gap_minutes: float = setting(
        30.0, "Chat exports and subtitles: a silence longer than this starts a new dialogue (30-120 suits most chats)."
    )


@dataclass(frozen=True)
class ModelSettings:
    """Which model to load and how."""

    name: str = setting(DEFAULT_MODEL, "Model folder (transformers or CTranslate2) or Hub id.")
    backend: str = setting(
        "auto",
        "auto, transformers, ctranslate2 or a plugin's; auto serves on the CPU through CTranslate2 float32 "
        "(converted once into the cache; the summaries of transformers fp32), else transformers, saying why.",
    )
    device: str = setting("auto", "auto, cpu, cuda or cuda:N.")
    dtype: str = setting("auto", "Weights dtype; auto is bfloat16 on a GPU that has it, else float32.")
    force_dtype: bool = setting(False, "Allow float16, which makes Pegasus overflow.")
    max_source_length: int | None = setting(None, "Source tokens kept  [default: 1024 or the model's limit]")
    trust_remote_code: bool = setting(False, "Run code shipped with a Hub model.")
    allow_pickle: bool = setting(False, "Load pickle (*.bin) weights when no safetensors exist.")
    threads: int = setting(0, "CPU threads for inference; 0 picks: 1 for small models, else the idle cores.")
    # None: float32 for conversions (transformers fp32's summaries), a CTranslate2 folder's own type.
    quantization: str | None = setting(
        None,
        "CTranslate2 weights: a transformers folder is converted once into the cache with them (float32 "
        "unless set); a CTranslate2 folder loads as this compute type. Set under --backend auto, it picks CTranslate2.",
    )


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
    keep_fields: tuple[str, ...] = setting((), "Input fields copied to the output (comma list, repeatable; * for all).")
    on_error: str = setting("fail", "Bad record: stop (exit 1) or skip it and go on (exit 3).")
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


def help_of(option: str) -> str:
    """The one line of help of a keyword option, read from its settings field."""
    section, name = OPTION_FIELDS[option]
    return next(f for f in fields(SECTIONS[section]) if f.name == name).metadata.get("help", "")


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
