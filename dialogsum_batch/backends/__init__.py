"""Inference backends: a registry of ``name -> loader`` behind one small interface.

A backend turns dialogues into token ids (so batches can be planned by length) and
batches of ids into summaries. Other packages add backends through the
``dialogsum_batch.backends`` entry-point group. The values a backend hands back (``Encoded``,
``Generated``, ``OutOfMemory``) live in ``common`` and are re-exported here; no module of this
package imports the package itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol

from ..config import DecodeSettings, ModelSettings
from ..errors import ConfigError, ModelError
from ..logs import Say
from ..modelfiles import check_model_folder
from .choice import choose_backend
from .common import Encoded, Generated, OutOfMemory, is_ctranslate2_dir  # noqa: F401 (re-exported)


class Backend(Protocol):
    """Optional: ``concurrent_batches`` (int, default 1), how many batches ``generate`` may run side by side,
    each called from a thread of its own."""

    name: str
    device: str
    max_source_length: int

    def encode(self, texts: Sequence[str]) -> list[Encoded]: ...

    def generate(self, batch: Sequence[Sequence[int]]) -> list[Generated]: ...

    def describe(self) -> dict[str, object]: ...


# A loader gets the model as the user named it (folder or Hub id) and finds it itself: the built-in ones
# through ``model_folder``, a plugin (or a test's fake) however it likes.
Loader = Callable[[ModelSettings, DecodeSettings, Say | None], Backend]


def _transformers(model: ModelSettings, decode: DecodeSettings, log: Say | None = None) -> Backend:
    from .transformers import TransformersBackend

    path = model_folder(model, log)
    if model.quantization:
        raise ConfigError(
            f"--quantization applies to CTranslate2, but {model.name} is served by transformers; "
            "add --backend ctranslate2 to convert it"
        )
    return TransformersBackend.load(path, model, decode)


def _ctranslate2(model: ModelSettings, decode: DecodeSettings, log: Say | None = None) -> Backend:
    from .ctranslate2 import CTranslate2Backend

    path = model_folder(model, log)
    if is_ctranslate2_dir(path):
        check_model_folder(path, model.allow_pickle)  # one line for broken or absurd files, before any allocation
    else:  # a transformers folder: checked (check_transformers_folder) as the conversion cache takes it
        path, model = convert_for_serving(path, model, log)
    return CTranslate2Backend.load(path, model, decode)


BACKENDS: dict[str, Loader] = {"transformers": _transformers, "ctranslate2": _ctranslate2}


def registry() -> dict[str, Loader]:
    """Built-in backends plus those other packages declare as entry points."""
    found = dict(BACKENDS)
    for entry in entry_points(group="dialogsum_batch.backends"):
        found.setdefault(entry.name, entry.load())
    return found


def model_folder(model: ModelSettings, log: Say | None = None) -> str:
    """The model's local folder: a Hub id is downloaded, or found in the cache. The loaders check what they
    read, once: ``check_transformers_folder`` for a transformers folder, ``check_model_folder`` for a
    CTranslate2 one.

    ``log`` hears which Hub revision was used, when the model came from the Hub.
    """
    from .resolve import resolve_model

    return resolve_model(model.name, model.allow_pickle, log)


def load_backend(model: ModelSettings, decode: DecodeSettings, log: Say | None = None) -> Backend:
    """Load the model with the asked-for backend; ``auto`` asks ``choose_backend`` (CTranslate2 where it keeps
    transformers fp32's summaries, else transformers, saying why in one line)."""
    loaders = registry()
    if model.backend == "auto":
        path = model_folder(model, log)
        choice = choose_backend(model, path, decode)
        if choice.note and log:
            log(choice.note)
        model = replace(model, name=path, backend=choice.backend)
    if model.backend not in loaders:
        raise ModelError(f"unknown backend '{model.backend}'; known: {', '.join(sorted(loaders))}")
    return loaders[model.backend](model, decode, log)


def serving(backend: Backend) -> str:
    """The backend and the compute type it runs at, for the log: ``ctranslate2, float32``."""
    dtype = backend.describe().get("dtype")
    return f"{backend.name}, {dtype}" if dtype else backend.name


def convert_for_serving(path: str, model: ModelSettings, log: Say | None) -> tuple[str, ModelSettings]:
    """A transformers folder asked to serve through CTranslate2: its conversion from the cache, made once.

    The conversion takes ``--quantization`` (float32 by default: transformers fp32's summaries; ``--fast`` is
    int8); the folder it gives then serves with its own weight type, so the setting is not applied a second time.
    """
    from ..errors import refuse_float16
    from .ct2_cache import Conversion, cached_conversion
    from .ct2_convert import QUANTIZATIONS, SERVING_QUANTIZATION

    quantization = model.quantization or SERVING_QUANTIZATION
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"unknown quantization '{quantization}'; choose one of {', '.join(QUANTIZATIONS)}")
    refuse_float16(quantization, model.force_dtype)
    conversion = Conversion(
        source=Path(path), quantization=quantization, model=model.name, allow_pickle=model.allow_pickle
    )
    return str(cached_conversion(conversion, log)), replace(model, quantization=None)
