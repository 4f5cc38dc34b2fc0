"""Checks on a model folder's files before anything loads them: one precise line instead of a traceback.

``check_model_folder`` reads only small things (config.json, generation_config.json and the
safetensors headers), so a broken, hostile or absurd folder is refused before transformers,
CTranslate2 or torch allocate anything for it. ``check_transformers_folder`` adds the one rule on
weights: safetensors, or pickle (*.bin) only when the caller allows it; each caller passes only the
advice its refusals end with. Serving (``dialogsum-batch -m DIR``, ``invoke evaluate``), fine-tuning's
base model, ``invoke export`` and the CTranslate2 conversion cache all call them. Nothing here imports torch.
"""

from __future__ import annotations

import os
import pickle
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ModelError, first_line
from .files import loads_json_limited

MAX_PARAMETERS_ENV = "DIALOGSUM_MAX_MODEL_PARAMETERS"
MAX_PARAMETERS = 20_000_000_000  # ~80 GB in fp32, 35x pegasus-large: past this a config is a mistake or an attack
MAX_JSON_BYTES = 16 * 1024 * 1024  # config.json and generation_config.json are a few KB
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit on its JSON header
SAFETENSORS_ITEM_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
# config.json fields that size tensors: a positive integer each (layer counts may be 0)
WIDTHS = (
    "vocab_size",
    "d_model",
    "hidden_size",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "d_ff",
    "intermediate_size",
    "max_position_embeddings",
    "d_kv",
)
HEADS = ("encoder_attention_heads", "decoder_attention_heads", "num_attention_heads", "num_heads")
LAYERS = ("encoder_layers", "decoder_layers", "num_layers", "num_decoder_layers", "num_hidden_layers")
# generation_config.json fields and their least valid value (None, or absent, is fine)
GENERATION_MINIMUMS = {
    "num_beams": 1,
    "num_beam_groups": 1,
    "num_return_sequences": 1,
    "max_new_tokens": 1,
    "max_length": 1,
    "min_length": 0,
    "min_new_tokens": 0,
    "no_repeat_ngram_size": 0,
    "top_k": 0,
}
GENERATION_POSITIVE = ("temperature", "repetition_penalty")
# What loading a model folder raises for a file that is broken or refused (torch's weights_only
# refusal of a hostile pickle is an UnpicklingError; a size mismatch a RuntimeError).
LOAD_ERRORS = (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError)


@dataclass(frozen=True)
class Advice:
    """How a refusal of a folder's weights ends: what to do instead, in the words of the command refusing."""

    pickle: str = "pass --allow-pickle to load them anyway"  # the folder has only pickle (*.bin) weights
    ctranslate2: str = "use --backend auto or --backend ctranslate2"  # the folder is a CTranslate2 one


SERVING = Advice()  # dialogsum-batch and invoke evaluate, the CTranslate2 conversion cache included


def load_failure(what: str, exc: BaseException) -> ModelError:
    """The one line for a load that raised one of LOAD_ERRORS (``what``: "cannot load model from DIR").

    torch's advice on a refused pickle is to retry without ``weights_only``: exactly wrong for a
    hostile file, so that case gets its own words.
    """
    if isinstance(exc, pickle.UnpicklingError):
        return ModelError(
            f"{what}: torch's weights_only loading refused its pickle weights (they ask to run "
            "code, or are corrupt); do not load them from an untrusted source"
        )
    return ModelError(f"{what}: {first_line(exc)}")


def check_model_folder(path: str | Path, allow_pickle: bool = False) -> None:
    """ModelError, one line, for a folder whose config, decoding settings or weight files are unusable.

    ``allow_pickle`` is not needed to read anything here (pickles are never opened: torch's
    ``weights_only`` loading refuses hostile ones later); it is taken so every caller passes the
    same two things and the rule can grow without changing them.
    """
    folder = Path(path)
    config = read_object(folder / "config.json")
    if config is not None:
        check_dimensions(config, folder / "config.json")
    generation = read_object(folder / "generation_config.json")
    if generation is not None:
        check_generation(generation, folder / "generation_config.json")
    for weights in sorted(folder.glob("*.safetensors")):
        check_safetensors(weights)


def weight_kind(folder: Path) -> str | None:
    """The weights a folder holds, as the loaders tell them apart: ``safetensors``, ``ctranslate2``
    (model.bin), ``pickle`` (any other *.bin), or None."""
    if any(folder.glob("*.safetensors")):
        return "safetensors"
    if (folder / "model.bin").is_file():
        return "ctranslate2"
    return "pickle" if any(folder.glob("*.bin")) else None


def check_transformers_folder(
    path: str | Path, allow_pickle: bool, advice: Advice = SERVING, name: str | None = None
) -> None:
    """ModelError, one line, unless ``path`` is a transformers model folder whose weights we agree to read.

    Safetensors always; pickle (*.bin) only with ``allow_pickle`` (torch's ``weights_only`` loading refuses
    hostile ones, but an untrusted pickle is not worth the try unasked). Then ``check_model_folder``.
    ``name`` is how the messages call the folder (its path by default).
    """
    folder = Path(path)
    label = name or str(path)
    if not folder.is_dir():
        raise ModelError(f"model folder '{label}' does not exist")
    if not (folder / "config.json").is_file():
        raise ModelError(f"{label} has no config.json: not a transformers model folder")
    kind = weight_kind(folder)
    if kind == "ctranslate2":
        raise ModelError(f"{label} is a CTranslate2 folder; {advice.ctranslate2}")
    if kind is None:
        raise ModelError(f"{label} holds no model weights (*.safetensors)")
    if kind == "pickle" and not allow_pickle:
        raise ModelError(f"{label} has only pickle weights (*.bin); {advice.pickle}")
    check_model_folder(folder, allow_pickle)


def read_json(file: Path) -> Any:
    """The parsed file, or None when it is missing or not JSON: for files that are no reason to fail
    (cards, metrics, caches, info files)."""
    try:
        return loads_json_limited(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # JsonLimitError and UnicodeDecodeError are ValueErrors
        return None


def read_object(file: Path) -> dict[str, Any] | None:
    """The JSON object in ``file``; None when there is no such file; ModelError when it is not one."""
    if not file.is_file():
        return None
    try:
        if file.stat().st_size > MAX_JSON_BYTES:
            raise ModelError(f"{file}: {file.stat().st_size} bytes, too large for a settings file")
        data = loads_json_limited(file.read_bytes())
    except OSError as exc:
        raise ModelError(f"{file}: cannot read it: {first_line(exc)}") from None
    except ValueError as exc:  # UnicodeDecodeError and JsonLimitError are ValueErrors
        raise ModelError(f"{file}: not valid JSON: {first_line(exc)}") from None
    if not isinstance(data, dict):
        raise ModelError(f"{file}: must hold a JSON object, not {json_kind(data)}")
    return data


def json_kind(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_dimensions(config: Mapping[str, Any], file: Path) -> None:
    """Sizes must be positive integers, heads must divide the width, and the whole must be a sane size."""
    for key in (*WIDTHS, *HEADS, *LAYERS):
        value = config.get(key)
        least = 0 if key in LAYERS else 1
        if value is not None and not (is_int(value) and value >= least):
            raise ModelError(f"{file}: {key} must be an integer >= {least}, not {value!r}")
    width = config.get("d_model") or config.get("hidden_size")
    if width and not config.get("d_kv"):  # T5-style configs size heads with d_kv instead
        for key in HEADS:
            heads = config.get(key)
            if heads and width % heads:
                raise ModelError(f"{file}: the width ({width}) is not divisible by {key} ({heads})")
    estimate, limit = parameter_estimate(config), max_parameters()
    if estimate > limit:
        raise ModelError(
            f"{file}: its sizes make about {estimate:.3g} parameters, more than the {limit:.3g} "
            f"allowed (raise {MAX_PARAMETERS_ENV} if the model really is that large)"
        )


def parameter_estimate(config: Mapping[str, Any]) -> int:
    """A rough upper bound on an encoder-decoder's parameter count, from its config alone (0 if unsized)."""
    width = config.get("d_model") or config.get("hidden_size") or 0
    ffn = max(config.get(key) or 0 for key in ("encoder_ffn_dim", "decoder_ffn_dim", "d_ff", "intermediate_size"))
    layers = sum(config.get(key) or 0 for key in LAYERS)
    inner = max(width, (config.get("d_kv") or 0) * max(config.get(key) or 0 for key in HEADS))
    embeddings = ((config.get("vocab_size") or 0) + (config.get("max_position_embeddings") or 0)) * width
    return embeddings + layers * (8 * width * inner + 2 * width * ffn)  # self- and cross-attention, feed-forward


def max_parameters() -> int:
    try:
        return int(os.environ.get(MAX_PARAMETERS_ENV) or MAX_PARAMETERS)
    except ValueError:
        raise ModelError(f"{MAX_PARAMETERS_ENV} must be a whole number") from None


def check_generation(settings: Mapping[str, Any], file: Path) -> None:
    """Decoding settings generate() would choke on, or silently misuse, are refused here."""
    for key, least in GENERATION_MINIMUMS.items():
        value = settings.get(key)
        if value is not None and not (is_int(value) and value >= least):
            raise ModelError(f"{file}: {key} must be an integer >= {least}, not {value!r}")
    for key in GENERATION_POSITIVE:
        value = settings.get(key)
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0):
            raise ModelError(f"{file}: {key} must be a number > 0, not {value!r}")
    top_p = settings.get("top_p")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0 < top_p <= 1):
        raise ModelError(f"{file}: top_p must be a number in (0, 1], not {top_p!r}")
    penalty = settings.get("length_penalty")
    if penalty is not None and not (isinstance(penalty, (int, float)) and not isinstance(penalty, bool)):
        raise ModelError(f"{file}: length_penalty must be a number, not {penalty!r}")


def check_safetensors(file: Path) -> None:
    """The header must be a JSON object whose tensors fit, end to end, in the file's data section.

    That is the layout the format specifies; a truncated file or random bytes fail it, and only
    the header (a few KB) is read.
    """
    try:
        size = file.stat().st_size
        with open(file, "rb") as handle:
            prefix = handle.read(8)
            length = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else -1
            if length < 2 or length > min(MAX_HEADER_BYTES, size - 8):
                raise ModelError(f"{file}: not a safetensors file (truncated or corrupt header)")
            header = loads_json_limited(handle.read(length))
    except OSError as exc:
        raise ModelError(f"{file}: cannot read it: {first_line(exc)}") from None
    except ValueError:
        raise ModelError(f"{file}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise ModelError(f"{file}: not a safetensors file (its header is not a JSON object)")
    check_tensor_layout(header, size - 8 - length, file)


def check_tensor_layout(header: Mapping[str, Any], data_bytes: int, file: Path) -> None:
    """Every tensor's offsets match its dtype and shape and lie in the data; together they cover it."""
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            start, stop = entry["data_offsets"]
            count = 1
            for dim in entry["shape"]:
                count *= dim if is_int(dim) and dim >= 0 else -(2**64)
            expected = count * SAFETENSORS_ITEM_BYTES[entry["dtype"]]
        except (TypeError, ValueError, KeyError):
            raise ModelError(f"{file}: corrupt safetensors header (tensor '{name}')") from None
        if not (is_int(start) and is_int(stop) and 0 <= start <= stop <= data_bytes and stop - start == expected):
            raise ModelError(f"{file}: tensor '{name}' does not fit the file (truncated or corrupt)")
        end = max(end, stop)
    if end != data_bytes:
        raise ModelError(f"{file}: {data_bytes - end} bytes of data no tensor accounts for (corrupt)")


# ---------------------------------------------------------------------------- decoding that cannot fit

GIB = 1024**3


def machine_memory() -> int:
    """This machine's physical memory in bytes (0 when the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def decoding_problem(
    folder: Path,
    num_beams: int | None,
    max_new_tokens: int | None,
    max_source_length: int | None,
    memory: int,
) -> str | None:
    """Why decoding options cannot work with a transformers folder's model, or None: a summary longer than the
    decoder has positions, or one dialogue's beam search (its attention caches and logits, the least any batch
    needs) larger than ``memory`` bytes. Options left unset take the folder's generation_config.json values."""
    config = read_object(folder / "config.json") or {}
    generation = read_object(folder / "generation_config.json") or {}
    width, layers = config.get("d_model"), config.get("decoder_layers")
    if not all(isinstance(value, int) and value > 0 for value in (width, layers)):
        return None  # not an encoder-decoder config we can size (a CTranslate2 folder): the load will tell
    positions = config.get("max_position_embeddings") or 1024
    beams = num_beams or generation.get("num_beams") or config.get("num_beams") or 1
    new = max_new_tokens or generation.get("max_new_tokens") or generation.get("max_length") or 128
    if max_new_tokens and max_new_tokens > positions:
        return f"--max-new-tokens {max_new_tokens} is past the model's {positions} decoder positions"
    source = min(max_source_length or 1024, positions)
    vocab = config.get("vocab_size") or 0
    cache = beams * layers * 2 * (source + new) * width * 4  # keys and values, self- and cross-attention, fp32
    needed = cache + beams * vocab * 4 * 3  # the step's logits, log-probabilities and scores
    if memory and needed > memory:
        return (
            f"--num-beams {beams} with {source} source and {new} summary tokens needs about {needed / GIB:,.0f} GiB "
            f"for a single dialogue, and this machine has {memory / GIB:,.0f} GiB; lower --num-beams, "
            "--max-new-tokens or --max-source-length"
        )
    return None
