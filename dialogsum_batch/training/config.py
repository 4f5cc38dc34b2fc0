"""The fine-tuning configuration: one frozen dataclass whose defaults are the ``pegasus-samsum`` recipe.

A run's config is the preset, then ``--config FILE`` (YAML or JSON, flat ``key: value``), then
``--set key=value`` (``presets.load_train_config`` puts them together). This module checks and
coerces every value once, so a typo fails before any model is loaded. It knows no preset: the
presets are built from it.
"""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Union

from ..errors import ConfigError, float16_refused
from ..files import JsonLimitError, loads_json_limited
from ..hub import SAMSUM_CORPUS_URL
from ..rouge import ROUGE_TYPES

UNION_TYPES = (Union, types.UnionType)  # Optional[int] and int | None
TINY_MODEL = "tiny"  # base_model value that builds the tiny random Pegasus into the run folder
OPTIMIZERS = ("adamw", "adafactor")
BEST_METRICS = (*ROUGE_TYPES, "loss")
SCHEDULES = (
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
)
BF16_INSTEAD = "use bf16, which is on by default on GPUs that support it"  # training's fp16 is refused
TRUE_WORDS = {"1", "true", "yes", "on", "y"}
FALSE_WORDS = {"0", "false", "no", "off", "n"}
NONE_WORDS = {"none", "null", "~", ""}


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of a fine-tuning run; the defaults are the ``pegasus-samsum`` recipe (presets.py says why)."""

    # --- what to train, on what, and where
    base_model: str = "google/pegasus-cnn_dailymail"  # Hub id, local folder, or "tiny" (built into the run)
    data: str | dict = SAMSUM_CORPUS_URL  # anything load_corpus reads (path, URL, Hub id, split->path); "" none
    columns: dict = field(default_factory=dict)  # load_corpus column mapping, e.g. {"dialogue": "chat"}
    project_data: bool = False  # add the repository's data/*.jsonl to the training split
    synthetic_train: int = 0  # synthetic chats added to the training split (0-10000)
    synthetic_validation: int = 0  # synthetic chats added to the validation split (0-1000)
    train_split: str = "train"  # split of `data` to train on
    eval_split: str = "validation"  # split of `data` to evaluate on; missing = no evaluation
    max_train_samples: int | None = None  # keep the first N training records (None = all)
    max_eval_samples: int | None = None  # keep the first N validation records (None = all)
    output_dir: str = "runs/pegasus-samsum"  # the run folder: final model, checkpoints, metrics, card
    resume: bool = False  # continue from the last checkpoint in output_dir
    trust_remote_code: bool = False  # run code shipped with a Hub model
    allow_pickle: bool = False  # load *.bin (pickle) weights when a model has no safetensors
    # --- optimisation
    num_train_epochs: float = 5.0  # passes over the training split (ignored when max_steps > 0)
    max_steps: int = -1  # optimizer steps; > 0 overrides num_train_epochs
    learning_rate: float = 3e-5  # peak learning rate (Pegasus fine-tuning: 1e-5 - 1e-4)
    lr_scheduler_type: str = "linear"  # decay after warmup: linear, cosine, constant_with_warmup ...
    warmup_steps: float = 500  # steps of linear warmup; a value below 1 is a share of all steps
    weight_decay: float = 0.01  # AdamW decoupled weight decay (0 - 0.1)
    label_smoothing: float = 0.1  # label smoothing factor (0 - 0.2)
    max_grad_norm: float = 1.0  # gradient clipping norm
    optimizer: str = "adamw"  # adamw (fused on CUDA) or adafactor (less memory)
    per_device_train_batch_size: int = 8  # rows per step per device; backs off on CUDA OOM
    per_device_eval_batch_size: int = 16  # rows per generation batch in evaluation
    gradient_accumulation_steps: int = 1  # steps summed per optimizer update
    max_source_length: int = 512  # dialogue tokens kept (SAMSum: >99% of chats fit in 512)
    max_target_length: int = 128  # reference summary tokens kept
    bf16: bool | None = None  # bfloat16 mixed precision; None = on when the GPU supports it
    gradient_checkpointing: bool | None = None  # recompute activations; None = on with CUDA
    auto_find_batch_size: bool | None = None  # shrink the batch on OOM; None = on with CUDA
    seed: int = 42  # seeds weights of the tiny model, data order and dropout
    torch_threads: int = 0  # CPU threads for torch; 0 keeps torch's default
    # --- cadence
    logging_steps: int = 50  # a loss line every N optimizer steps
    eval_steps: int = 500  # evaluate (generate + ROUGE) every N steps
    save_steps: int = 500  # checkpoint every N steps; a multiple of eval_steps
    save_total_limit: int = 2  # checkpoints kept (the best one is always kept too)
    metric_for_best_model: str = "rougeL"  # which validation score picks the final weights
    eval_num_beams: int | None = 4  # beams while evaluating during training; None = num_beams
    # --- decoding, written to generation_config.json and used for the final evaluation
    num_beams: int = 8  # beam size (1 = greedy)
    length_penalty: float = 0.8  # < 1 favours shorter beams
    max_new_tokens: int = 128  # longest summary in tokens
    min_length: int = 0  # shortest summary in tokens (cnn_dailymail's 32 is too long for chats)
    no_repeat_ngram_size: int = 0  # block repeated n-grams of this size; 0 = off

    def check(self) -> TrainConfig:
        """Raise ConfigError for values a run cannot use; return self for chaining."""
        for problem in _problems(self):
            raise ConfigError(problem)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, in field order."""
        return asdict(self)

    @property
    def effective_batch_size(self) -> int:
        """Rows per optimizer update on one device."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps


def _problems(config: TrainConfig) -> Iterable[str]:
    """Every rule a config breaks, as one line each (the first one is raised)."""
    yield from _range_problems(config)
    if config.optimizer not in OPTIMIZERS:
        yield f"optimizer '{config.optimizer}' is not one of {', '.join(OPTIMIZERS)}"
    if config.lr_scheduler_type not in SCHEDULES:
        yield f"lr_scheduler_type '{config.lr_scheduler_type}' is not one of {', '.join(SCHEDULES)}"
    if config.metric_for_best_model not in BEST_METRICS:
        yield f"metric_for_best_model '{config.metric_for_best_model}' is not one of {', '.join(BEST_METRICS)}"
    if config.save_steps % config.eval_steps:
        yield (
            f"save_steps {config.save_steps} must be a multiple of eval_steps {config.eval_steps}, "
            "so that every checkpoint has a ROUGE score to pick the best one by"
        )
    if not (config.data or config.project_data or config.synthetic_train):
        yield "no training data: set data, project_data or synthetic_train"
    if not str(config.base_model).strip() or not str(config.output_dir).strip():
        yield "base_model and output_dir must not be empty"


def _range_problems(config: TrainConfig) -> Iterable[str]:
    """Numbers outside the range a run can use."""
    at_least = {
        "per_device_train_batch_size": 1,
        "per_device_eval_batch_size": 1,
        "gradient_accumulation_steps": 1,
        "max_source_length": 8,
        "max_target_length": 4,
        "logging_steps": 1,
        "eval_steps": 1,
        "save_steps": 1,
        "save_total_limit": 1,
        "num_beams": 1,
        "max_new_tokens": 1,
        "min_length": 0,
        "no_repeat_ngram_size": 0,
        "synthetic_train": 0,
        "synthetic_validation": 0,
        "torch_threads": 0,
        "warmup_steps": 0,
        "weight_decay": 0,
        "max_grad_norm": 0,
    }
    for name, low in at_least.items():
        if getattr(config, name) < low:
            yield f"{name} must be at least {low}, got {getattr(config, name)}"
    for name in ("max_train_samples", "max_eval_samples", "eval_num_beams"):
        if getattr(config, name) is not None and getattr(config, name) < 1:
            yield f"{name} must be at least 1 (or none), got {getattr(config, name)}"
    if config.learning_rate <= 0:
        yield f"learning_rate must be positive, got {config.learning_rate}"
    if config.max_steps <= 0 and config.num_train_epochs <= 0:
        yield "set max_steps > 0 or num_train_epochs > 0"
    if not 0 <= config.label_smoothing < 1:
        yield f"label_smoothing must be in [0, 1), got {config.label_smoothing}"


# --------------------------------------------------------------------------- coercion


def field_types() -> dict[str, Any]:
    """Each TrainConfig field name and its resolved type annotation."""
    return typing.get_type_hints(TrainConfig)


def coerce(name: str, value: Any) -> Any:
    """``value`` as the type field ``name`` holds; strings from the command line are parsed."""
    kind = field_types()[name]
    optional = typing.get_origin(kind) in UNION_TYPES and type(None) in typing.get_args(kind)
    if optional and (value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS)):
        return None
    if name == "data":
        return _as_data(value)
    base = next(t for t in typing.get_args(kind) if t is not type(None)) if optional else kind
    try:
        return _convert(base, value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _convert(kind: Any, value: Any) -> Any:
    """Convert one value to bool, int, float, str or dict, refusing lossy conversions."""
    if kind is bool:
        return _as_bool(value)
    if kind is int:
        number = float(value) if isinstance(value, str) else value
        if isinstance(number, bool) or not isinstance(number, (int, float)) or number != int(number):
            raise ValueError(f"expected a whole number, got {value!r}")
        return int(number)
    if kind is float:
        if isinstance(value, bool):
            raise ValueError(f"expected a number, got {value!r}")
        return float(value)
    if kind is dict:
        return _as_mapping(value)
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}")
    return value


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS | FALSE_WORDS:
        return word in TRUE_WORDS
    raise ValueError(f"expected true or false, got {value!r}")


def _as_mapping(value: Any) -> dict:
    """A mapping given as such, or as JSON text on the command line."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError:
            raise ValueError(f'expected a JSON object such as {{"dialogue": "chat"}}, got {value!r}') from None
    if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"expected a mapping of names to text, got {value!r}")
    return {str(k): v for k, v in value.items()}


def _as_data(value: Any) -> str | dict:
    """A corpus source: text (path, URL, Hub id) or a split -> path mapping (JSON text allowed)."""
    if isinstance(value, str) and value.strip().startswith("{"):
        value = _as_mapping(value)
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(value, (str, Path)):
        return str(value)
    raise ConfigError(f"data: expected a path, URL, Hub id or split -> path mapping, got {value!r}")


# ----------------------------------------------------------------------------- loading


def apply(config: TrainConfig, values: Mapping[str, Any], where: str) -> TrainConfig:
    """A copy of ``config`` with ``values`` applied; unknown keys and fp16 are ConfigErrors."""
    known = [f.name for f in fields(TrainConfig)]
    changes: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).strip().replace("-", "_")
        if name == "fp16":
            if _as_bool(value):
                raise ConfigError(f"{where}: {float16_refused('fp16', BF16_INSTEAD)}")
            continue
        if name not in known:
            raise ConfigError(f"{where}: unknown setting '{key}'; known settings: {', '.join(known)}")
        changes[name] = coerce(name, value)
    return replace(config, **changes)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A flat mapping from a .json, .yaml or .yml file."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {file} does not exist")
    text = file.read_text(encoding="utf-8")
    if file.suffix.lower() == ".json":
        values = _parse_json(text, file)
    elif file.suffix.lower() in (".yaml", ".yml"):
        values = _parse_yaml(text, file)
    else:
        raise ConfigError(f"config file {file}: name it .json, .yaml or .yml")
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file {file}: expected a mapping of settings, got {type(values).__name__}")
    return values


def _parse_json(text: str, file: Path) -> Any:
    try:
        return loads_json_limited(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    except JsonLimitError as exc:  # valid JSON Python will not read
        raise ConfigError(f"config file {file}: {exc}") from None


def _parse_yaml(text: str, file: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark is not None else str(file)
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
