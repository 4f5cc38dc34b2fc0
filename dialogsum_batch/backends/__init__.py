"""Inference backends: a registry of ``name -> loader`` behind one small interface.

A backend turns dialogues into token ids (so batches can be planned by length) and
batches of ids into summaries. Other packages add backends through the
``dialogsum_batch.backends`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from ..config import DecodeSettings, ModelSettings
from ..errors import ConfigError, ModelError


@dataclass(frozen=True)
class Encoded:
    """A dialogue's source token ids, already cut to the model's limit."""

    ids: list[int]
    truncated: bool


@dataclass(frozen=True)
class Generated:
    """One summary and how many tokens it took."""

    text: str
    tokens: int


class OutOfMemory(Exception):
    """The accelerator ran out of memory on a batch; the caller splits it and retries."""


class Backend(Protocol):
    name: str
    device: str
    max_source_length: int

    def encode(self, texts: Sequence[str]) -> list[Encoded]: ...

    def generate(self, batch: Sequence[Sequence[int]]) -> list[Generated]: ...

    def describe(self) -> dict[str, object]: ...


Loader = Callable[[str, ModelSettings, DecodeSettings], Backend]


def _transformers(path: str, model: ModelSettings, decode: DecodeSettings) -> Backend:
    from .transformers import TransformersBackend

    return TransformersBackend.load(path, model, decode)


def _ctranslate2(path: str, model: ModelSettings, decode: DecodeSettings) -> Backend:
    from .ctranslate2 import CTranslate2Backend

    return CTranslate2Backend.load(path, model, decode)


BACKENDS: dict[str, Loader] = {"transformers": _transformers, "ctranslate2": _ctranslate2}


def registry() -> dict[str, Loader]:
    """Built-in backends plus those other packages declare as entry points."""
    found = dict(BACKENDS)
    for entry in entry_points(group="dialogsum_batch.backends"):
        found.setdefault(entry.name, entry.load())
    return found


def is_ctranslate2_dir(path: str) -> bool:
    """A CTranslate2 model folder holds model.bin beside config.json."""
    folder = Path(path)
    return (folder / "model.bin").is_file() and (folder / "config.json").is_file()


def detect_backend(path: str) -> str:
    return "ctranslate2" if is_ctranslate2_dir(path) else "transformers"


def load_backend(model: ModelSettings, decode: DecodeSettings, log: Callable[[str], None] | None = None) -> Backend:
    """Resolve the model (local folder or Hub id) and load it with the asked-for backend.

    ``log`` hears which Hub revision was used, when the model came from the Hub.
    """
    from ..modelfiles import check_model_folder
    from .resolve import resolve_model

    path = resolve_model(model.name, model.allow_pickle, log)
    check_model_folder(path, model.allow_pickle)  # one line for broken or absurd files, before any allocation
    name = detect_backend(path) if model.backend == "auto" else model.backend
    loaders = registry()
    if name not in loaders:
        raise ModelError(f"unknown backend '{name}'; known: {', '.join(sorted(loaders))}")
    if name == "ctranslate2" and not is_ctranslate2_dir(path):
        path, model = convert_for_serving(path, model, log)
    elif model.quantization and name != "ctranslate2":
        raise ConfigError(f"--quantization applies to CTranslate2, but {model.name} is served by {name}; "
                          "add --backend ctranslate2 to convert it")
    return loaders[name](path, model, decode)


def convert_for_serving(path: str, model: ModelSettings, log: Callable[[str], None] | None
                        ) -> tuple[str, ModelSettings]:
    """A transformers folder asked to serve through CTranslate2: its conversion from the cache, made once.

    The conversion takes ``--quantization`` (int8 by default, as ``invoke export``); the folder it
    gives then serves with its own weight type, so the setting is not applied a second time.
    """
    from ..export import DEFAULT_QUANTIZATION, QUANTIZATIONS
    from .ct2_cache import Conversion, cached_conversion
    from .ctranslate2 import check_overflow

    quantization = model.quantization or DEFAULT_QUANTIZATION
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"unknown quantization '{quantization}'; choose one of {', '.join(QUANTIZATIONS)}")
    check_overflow(quantization, model.force_dtype)
    conversion = Conversion(source=Path(path), quantization=quantization, model=model.name,
                            allow_pickle=model.allow_pickle)
    return str(cached_conversion(conversion, log)), replace(model, quantization=None)
