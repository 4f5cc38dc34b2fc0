"""The command line of fine-tuning, written once: the option table that ``dialogsum-batch finetune`` (Click)
and ``invoke finetune`` are both built from, and the run both of them end in.

Options that name a ``TrainConfig`` field become overrides; ``--set KEY=VALUE`` reaches every other field
and wins over the named options. Values stay text here: the config coerces and checks each one, once,
with its own messages. The launch options start ``accelerate launch`` (``launch.py``), which runs
``dialogsum-batch finetune`` with the other options on every process.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .presets import load_train_config
from .runtime import prepare_cuda_allocator

INTERRUPTED = "interrupted: run again with --resume to continue from the last checkpoint"


@dataclass(frozen=True)
class Option:
    """One option, as both commands show it."""

    name: str  # the Python name; the flag is --name with dashes ("set_" -> --set, as Invoke spells it)
    kind: type  # str takes a value, int a whole number of at least 1, bool is a flag, list is repeatable
    help: str
    default: Any = None  # None: not given (the preset or the file decides)
    metavar: str | None = None  # the value's placeholder in --help
    setting: bool = False  # names a TrainConfig field: a given value becomes an override
    launch: bool = False  # read by accelerate launch, not passed on to the launched processes

    @property
    def flag(self) -> str:
        return "--" + self.name.rstrip("_").replace("_", "-")


# The order is the order in which the task passes options on to the training module.
OPTIONS: tuple[Option, ...] = (
    Option(
        "preset",
        str,
        "Recipe to start from: pegasus-samsum (GPU, the default) or smoke (tiny model, CPU, ~1 min)",
        metavar="NAME",
    ),
    Option(
        "output_dir",
        str,
        "Run folder: final model, checkpoints, metrics, plot, model card",
        metavar="DIR",
        setting=True,
    ),
    Option("config", str, "YAML or JSON file of settings, applied over the preset", metavar="FILE"),
    Option(
        "data",
        str,
        "Corpus: corpus.7z, save_to_disk folder, CSV/JSON/JSONL/Parquet file, URL or Hub id",
        metavar="SOURCE",
        setting=True,
    ),
    Option("base_model", str, "Model to fine-tune: Hub id, local folder, or 'tiny'", metavar="MODEL", setting=True),
    Option("max_steps", str, "Optimizer steps; overrides the number of epochs", metavar="N", setting=True),
    Option("resume", bool, "Continue from the last checkpoint in the run folder", default=False, setting=True),
    Option("set_", list, "Any setting as KEY=VALUE, e.g. --set learning_rate=5e-5 (repeatable)", metavar="KEY=VALUE"),
    Option(
        "num_processes",
        int,
        "Train on N processes (one per GPU) through accelerate launch (DDP)",
        metavar="N",
        launch=True,
    ),
    Option(
        "accelerate_config",
        str,
        "accelerate config file (FSDP, DeepSpeed, several machines) for accelerate launch",
        metavar="FILE",
        launch=True,
    ),
)
TRAINING_OPTIONS = tuple(option for option in OPTIONS if not option.launch)  # what each launched process takes
TASK_HELP = {option.name: option.help for option in OPTIONS}  # Invoke's help= for the task
TASK_ITERABLE = [option.name for option in OPTIONS if option.kind is list]  # Invoke's iterable= for the task
TASK_DEFAULTS = {option.name: option.default for option in OPTIONS}  # the task's keywords (tasks.takes_options)


def _given(option: Option, value: Any) -> bool:
    """Whether a value was given: a flag set, a list not empty, a value not None or blank."""
    return bool(value) if option.kind in (bool, list) else value not in (None, "")


# ------------------------------------------------------------------------- the two commands


# ------------------------------------------------------------------------- what the options mean


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """``["lr=1e-3", "bf16=false"]`` -> ``{"lr": "1e-3", "bf16": "false"}``; values stay text."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got '{item}'")
        pairs[key.strip()] = value.strip()
    return pairs


def overrides(options: Mapping[str, Any]) -> dict[str, Any]:
    """The config settings the options give: the named ones, then ``--set KEY=VALUE`` pairs, which win."""
    values = {
        option.name: options[option.name]
        for option in OPTIONS
        if option.setting and _given(option, options.get(option.name))
    }
    values.update(parse_assignments(options.get("set_") or ()))
    return values


def module_arguments(options: Mapping[str, Any]) -> list[str]:
    """The given options as ``dialogsum-batch finetune`` takes them on each launched process, in table order."""
    arguments: list[str] = []
    for option in TRAINING_OPTIONS:
        value = options.get(option.name)
        if not _given(option, value):
            continue
        if option.kind is bool:
            arguments.append(option.flag)
        elif option.kind is list:
            arguments += [part for item in value for part in (option.flag, str(item))]
        else:
            arguments += [option.flag, str(value)]
    return arguments


def finetune_run(options: Mapping[str, Any]) -> str:
    """Load the config the options describe and train it in this process; the run folder. Raises
    DialogsumError for bad settings, data or model (one line each)."""
    prepare_cuda_allocator()  # before the trainer's import pulls torch in
    config = load_train_config(options.get("preset"), options.get("config"), overrides(options))
    from . import trainer  # torch and transformers: seconds to import, so only for settings known to be good

    return str(trainer.finetune(config))
