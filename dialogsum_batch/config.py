"""Typed, frozen settings for a batch run, built once from the CLI and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_MODEL = "transformersbook/pegasus-samsum"  # a public Pegasus fine-tuned on SAMSum
MODEL_ENV = "DIALOGSUM_MODEL"


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
    """How records are windowed, sorted and cut into batches."""

    batch_tokens: int = 8192  # padded source tokens per batch (rows x longest row)
    max_batch_size: int = 64  # rows per batch, whatever their length
    sort_window: int = 2048  # records held at once and sorted by length (memory bound)
    unordered: bool = False  # write results as batches finish instead of in input order
    max_wait: float = 1.0  # seconds a record may wait for its window to fill while input runs dry; 0 = no limit


@dataclass(frozen=True)
class LongSettings:
    """What becomes of a dialogue longer than the model's source limit."""

    mode: str = "truncate"  # truncate: cut at the limit (flagged); chunk: summarize pieces, then their summaries
    overlap: int = 1  # chunk: turns repeated at the start of the next piece, so a reply keeps its question
    target: int = 128  # chunk: joined piece summaries longer than this many tokens are summarized again


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
class RunSettings:
    """Everything a batch run needs apart from its inputs and outputs."""

    model: ModelSettings = field(default_factory=ModelSettings)
    decode: DecodeSettings = field(default_factory=DecodeSettings)
    batch: BatchSettings = field(default_factory=BatchSettings)
    long: LongSettings = field(default_factory=LongSettings)
    fields: FieldNames = field(default_factory=FieldNames)
    keep_fields: tuple[str, ...] = ()  # input fields copied to the output ("*" = all)
    on_error: str = "fail"  # fail | skip
    shard: tuple[int, int] | None = None  # (i, n), 1 <= i <= n: keep this share of ids
