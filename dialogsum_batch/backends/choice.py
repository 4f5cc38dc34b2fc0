"""Which backend serves a model under ``--backend auto``: the one place that decides, for every surface.

The command, ``evaluate``, the Python API and the Ray entry point all load through ``load_backend``,
which asks ``choose_backend``. The rule, fastest first among the paths that keep transformers fp32's
summaries:

* a CTranslate2 folder (``model.bin``) is served by CTranslate2, at the folder's own weight type;
* ``--quantization`` (or ``--fast``) asks for CTranslate2 weights, so CTranslate2 serves;
* a transformers folder (local or a Hub snapshot) on the CPU is converted once into the cache as float32
  and served by CTranslate2: greedy summaries identical to transformers fp32 (200/200 on the trained tiny
  model, 96/96 on the mid benchmark model), 1.4x faster through the engine, and a process that never
  imports torch once the conversion is cached. Beam search keeps CTranslate2 float32 too, and says so in
  one line: CTranslate2's beam search is not transformers', so 4-beam summaries matched on 188/200 (the
  tiny model fine-tuned) with ROUGE-1 83.67 against 83.76, at 2x the speed (0.81 identical on the random
  mid model); int8 scored 83.64 (bench/README.md, bench/results/bench_ct2_cache.md);
* everything else falls back to transformers, with one line saying why: ctranslate2 missing, a GPU
  (bf16 transformers until ``bench/gpu_check.py`` measures otherwise), a ``--dtype`` other than float32,
  ``--trust-remote-code``, a model type whose CTranslate2 output is not checked here, or decoding settings
  CTranslate2 does not have.

``--backend transformers`` and ``--backend ctranslate2`` are taken as asked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import DecodeSettings, ModelSettings
from ..errors import ModelError
from ..modelfiles import read_object
from .common import is_ctranslate2_dir

# Model types whose CTranslate2 conversion is checked against transformers here (tests/test_ctranslate2.py).
CHECKED_MODEL_TYPES = frozenset({"pegasus"})
# generation_config.json settings the CTranslate2 backend cannot honour, with the value that means "off".
UNSUPPORTED_GENERATION = {
    "num_beam_groups": 1,
    "diversity_penalty": 0.0,
    "encoder_no_repeat_ngram_size": 0,
    "typical_p": 1.0,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "penalty_alpha": None,
    "bad_words_ids": None,
    "force_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "sequence_bias": None,
    "forced_bos_token_id": None,
    "exponential_decay_length_penalty": None,
    "guidance_scale": None,
}


@dataclass(frozen=True)
class Choice:
    """The backend that serves, why, and what the log should say about it."""

    backend: str  # a registry name: transformers, ctranslate2 or a plugin's
    reason: str  # one line: what made this the backend
    note: str | None = None  # one line for the log: a fallback, or beam search that may differ from transformers'


def choose_backend(model: ModelSettings, path: str, decode: DecodeSettings | None = None) -> Choice:
    """The backend for ``model``, whose files are in ``path`` (a local folder: resolved already); ``decode`` is
    the user's decoding overrides (beam search is worth a line in the log)."""
    if model.backend != "auto":
        return Choice(model.backend, f"--backend {model.backend}")
    if is_ctranslate2_dir(path):
        return Choice("ctranslate2", "a CTranslate2 folder (model.bin)")
    if model.quantization:
        return Choice("ctranslate2", f"--quantization {model.quantization} asks for CTranslate2 weights")
    reason = why_not_ctranslate2(model, path)
    if reason:
        return Choice("transformers", reason, note=f"serving with transformers: {reason}")
    beams = beam_size(path, decode or DecodeSettings())
    note = (
        f"beam search ({beams} beams) through CTranslate2 float32: a few summaries may differ from transformers' "
        "(4 beams: 188/200 identical, ROUGE-1 -0.09 on the trained tiny model); --backend transformers for its own"
        if beams > 1
        else None
    )
    return Choice("ctranslate2", "CPU: CTranslate2 float32 gives transformers fp32's summaries, faster", note)


def beam_size(path: str, decode: DecodeSettings) -> int:
    """The beams a run will use: ``--num-beams``, else the folder's decoding settings (1 when unset)."""
    if decode.num_beams is not None:
        return decode.num_beams
    folder = Path(path)
    settings = settings_file(folder / "generation_config.json") or settings_file(folder / "config.json")
    beams = settings.get("num_beams")
    return beams if isinstance(beams, int) and beams > 0 else 1


def why_not_ctranslate2(model: ModelSettings, path: str) -> str | None:
    """Why CTranslate2 cannot stand in for transformers fp32 here, or None when it can."""
    if model.dtype not in ("auto", "float32"):
        return f"--dtype {model.dtype} is a transformers setting"
    if model.trust_remote_code:
        return "--trust-remote-code runs the model's own code, which only transformers can"
    model_type = settings_file(Path(path) / "config.json").get("model_type")
    if model_type not in CHECKED_MODEL_TYPES:
        return (
            f"CTranslate2's output is checked for {', '.join(sorted(CHECKED_MODEL_TYPES))} models, not "
            f"{model_type or 'this one'}; --backend ctranslate2 to use it anyway"
        )
    unsupported = unsupported_generation(path)
    if unsupported:
        return f"generation_config.json sets {unsupported}, which CTranslate2 does not do"
    ct2 = importable_ctranslate2()
    if ct2 is None:
        return "the ctranslate2 package is not installed (pip install ctranslate2)"
    if on_gpu(model.device, ct2):
        return "on a GPU, transformers bf16 is the default until bench/gpu_check.py measures otherwise"
    return None


def unsupported_generation(path: str) -> str | None:
    """The first decoding setting of the folder that CTranslate2 has no equivalent for, as ``key=value``."""
    folder = Path(path)
    settings = settings_file(folder / "generation_config.json")
    if not settings:  # none: transformers derives it from config.json, as the cache does
        settings = settings_file(folder / "config.json")
    for key, off in UNSUPPORTED_GENERATION.items():
        value = settings.get(key)
        if value not in (None, off, [], {}):
            return f"{key}={value}"
    return None


def settings_file(file: Path) -> dict[str, Any]:
    """A JSON settings file, or {} when missing or broken: the loader then refuses it in one precise line."""
    try:
        return read_object(file) or {}
    except ModelError:
        return {}


def importable_ctranslate2() -> Any:
    """The ctranslate2 module, or None when it is missing or broken (a wheel for another platform, a bad library)."""
    try:
        import ctranslate2
    except (ImportError, OSError):
        return None
    return ctranslate2


def on_gpu(device: str, ct2: Any) -> bool:
    """Whether the model would run on a GPU: asked for, or ``auto`` with a CUDA device visible."""
    if device != "auto":
        return device.startswith("cuda")
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    try:
        return ct2.get_cuda_device_count() > 0
    except (RuntimeError, OSError):  # a driver CTranslate2 cannot use: torch may still see the GPU
        return Path("/proc/driver/nvidia/gpus").is_dir()
