"""CTranslate2 backend: a converted model folder (``model.bin``) on CPU (int8 or float32) or CUDA.

The folder comes from ``invoke export --format ctranslate2``, or from the conversion cache
(``ct2_cache``) when ``--backend ctranslate2`` is given a transformers folder; both copy the tokenizer
and ``generation_config.json`` beside the model. CTranslate2 reads neither, so this backend tokenizes
with the copied tokenizer and maps every decoding setting onto ``translate_batch`` explicitly:
CTranslate2's own defaults (beam size 2, 256 tokens, at least one token) never apply.

Lengths follow transformers' conventions for encoder-decoder models, so greedy output matches the
transformers backend token for token: ``max_length`` counts the decoder start token, and with
``forced_eos_token_id`` the last step is spent on ``</s>``, so one fewer free token is decoded.
Torch is not needed to serve, nor transformers where the folder has a plain ``tokenizer.json``
(``tokenizer.py``): a process serving a cached conversion starts ~2.7 s sooner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..config import DecodeSettings, ModelSettings
from ..errors import ModelError, first_line, refuse_float16
from ..modelfiles import read_object
from .common import (
    DEFAULT_SOURCE_LIMIT,
    Encoded,
    Generated,
    OutOfMemory,
    auto_threads,
    clean,
    encode_texts,
    generation_summary,
    is_ctranslate2_dir,
    usable_cores,
)
from .ct2_convert import INSTALL_CT2, read_info
from .tokenizer import load_light_tokenizer


@dataclass(frozen=True)
class Decoding:
    """``translate_batch`` options, every one set so that CTranslate2's defaults never leak through."""

    beam_size: int  # 1 = greedy
    length_penalty: float  # beam score / length ** penalty
    max_decoding_length: int  # tokens decoded at most, </s> included
    min_decoding_length: int  # tokens before </s> is allowed
    no_repeat_ngram_size: int  # 0 = off
    repetition_penalty: float  # 1 = off
    sampling_topk: int  # 1 = no sampling
    sampling_topp: float
    sampling_temperature: float
    forced_eos: bool  # transformers spends the last step on </s>; counted in Generated.tokens

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Translator.translate_batch``."""
        options = asdict(self)
        del options["forced_eos"]
        return {**options, "max_input_length": 0, "return_end_token": True, "return_scores": False}


def decoding_options(generation: Any) -> Decoding:
    """Map a transformers GenerationConfig onto CTranslate2's options, transformers' length rules included."""
    if generation.max_new_tokens is not None:
        longest = generation.max_new_tokens
    else:
        longest = (generation.max_length or 20) - 1  # max_length counts the decoder start token
    forced_eos = generation.forced_eos_token_id is not None
    longest = max(1, longest - 1 if forced_eos else longest)
    shortest = max(generation.min_new_tokens or 0, (generation.min_length or 0) - 1, 0)
    sampling = bool(generation.do_sample)
    return Decoding(
        beam_size=int(generation.num_beams or 1),
        length_penalty=float(generation.length_penalty if generation.length_penalty is not None else 1.0),
        max_decoding_length=int(longest),
        min_decoding_length=int(min(shortest, longest)),
        no_repeat_ngram_size=int(generation.no_repeat_ngram_size or 0),
        repetition_penalty=float(generation.repetition_penalty or 1.0),
        sampling_topk=int(generation.top_k or 0) if sampling else 1,
        sampling_topp=float(generation.top_p or 1.0) if sampling else 1.0,
        sampling_temperature=float(generation.temperature or 1.0) if sampling else 1.0,
        forced_eos=forced_eos,
    )


def import_ctranslate2() -> Any:
    try:
        import ctranslate2
    except ImportError as exc:
        raise ModelError(
            f"this model is a CTranslate2 folder, which needs the ctranslate2 package: {INSTALL_CT2}"
        ) from exc
    return ctranslate2


def pick_device(ct2: Any, asked: str) -> tuple[str, int]:
    """(``cpu`` | ``cuda``, index); ``auto`` is the first GPU CTranslate2 can use, else the CPU."""
    gpus = ct2.get_cuda_device_count()
    if asked == "auto":
        return ("cuda", 0) if gpus else ("cpu", 0)
    kind, _, index = asked.partition(":")
    if kind == "cpu":
        return "cpu", 0
    if kind != "cuda" or (index and not index.isdigit()):
        raise ModelError(f"unknown device '{asked}'; use auto, cpu, cuda or cuda:N")
    if not gpus:
        raise ModelError(f"--device {asked} asked for, but CTranslate2 sees no CUDA device")
    return "cuda", int(index or 0)


def pick_compute_type(ct2: Any, model: ModelSettings, device: str, index: int, quantization: str | None) -> str:
    """The export's own type (``default``) unless --dtype or --quantization says otherwise; bf16 for float32
    exports on GPUs. ``quantization`` is the export's (from its info file)."""
    refuse_float16(model.dtype, model.force_dtype)
    if model.quantization:
        return asked_compute_type(model)
    int8 = bool(quantization and quantization.startswith("int8"))
    if model.dtype == "auto":
        wide = quantization in (None, "float32")
        if device == "cuda" and wide and "bfloat16" in ct2.get_supported_compute_types("cuda", index):
            return "bfloat16"  # as the transformers backend does on GPUs that have it
        return "default"
    return f"int8_{model.dtype}" if int8 else model.dtype  # int8 weights stay int8; --dtype sets the rest


def asked_compute_type(model: ModelSettings) -> str:
    """--quantization on a CTranslate2 folder: CTranslate2 converts the weights to that type as it loads them."""
    if model.dtype != "auto":
        raise ModelError("--quantization and --dtype both set the compute type of a CTranslate2 folder; pass one")
    refuse_float16(str(model.quantization), model.force_dtype)
    return str(model.quantization)


def cpu_threads(asked: int, path: str, quantization: str | None, device: str) -> int:
    """--threads, else on the CPU the transformers backend's rule: one for small models, else the idle cores."""
    if asked:
        return asked
    if device != "cpu":
        return usable_cores()  # intra_threads only feeds the host-side work of a GPU model
    return auto_threads(estimated_parameters(path, quantization))


def estimated_parameters(path: str, quantization: str | None) -> int:
    """Weights in model.bin, from its size and weight type (float32, the converter's own default, when unknown)."""
    width = 1 if quantization and quantization.startswith("int8") else 2 if quantization and "16" in quantization else 4
    try:
        return (Path(path) / "model.bin").stat().st_size // width
    except OSError:
        return 0


class GenerationValues:
    """generation_config.json's values by attribute, None where unset: what ``decoding_options`` reads from a
    transformers ``GenerationConfig`` (whose fields all default to None in transformers 5), without importing it."""

    def __init__(self, values: dict[str, Any]):
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # only called for names never set
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    def update(self, **values: Any) -> None:
        self.__dict__.update(values)


def load_generation(path: str, decode: DecodeSettings) -> GenerationValues:
    """generation_config.json (transformers' defaults when absent) with the user's overrides on top.

    The folder was checked (``check_model_folder``) or written by our own conversion, so its values are sane.
    """
    generation = GenerationValues(read_object(Path(path) / "generation_config.json") or {})  # ModelError: one line
    generation.update(**decode.overrides())
    return generation


def load_tokenizer(path: str, trust_remote_code: bool) -> Any:
    """tokenizer.json through the tokenizers library where that is all transformers would do; else AutoTokenizer."""
    light = None if trust_remote_code else load_light_tokenizer(path)
    if light is not None:
        return light
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(
            f"{path} has no usable tokenizer ({first_line(exc)}); export with `invoke export --format ctranslate2`, "
            "which copies it"
        ) from exc


class CTranslate2Backend:
    """``Translator.translate_batch`` on batches the engine planned (one call, no rebatching)."""

    name = "ctranslate2"

    def __init__(
        self,
        translator: Any,
        tokenizer: Any,
        generation: Any,
        max_source_length: int,
        device: str,
        threads: int,
        lanes: int = 1,
    ):
        self.translator = translator
        self.tokenizer = tokenizer
        self.generation = generation
        self.decoding = decoding_options(generation)
        self.max_source_length = max_source_length
        self.device = device
        self.threads = threads
        # On the CPU, batches run side by side with one thread each (inter_threads), not one at a time over every
        # core (intra_threads): a greedy step's small matrices barely gain from a second thread, whole batches do.
        # Mid model, 96 DialogSum chats, 2 cores: int8 1.31x greedy, 1.50x with 4 beams, float32 1.21x, the same
        # summaries (the same batches). A GPU runs one batch at a time.
        self.concurrent_batches = lanes
        self.eos_id = tokenizer.eos_token_id
        self.eos_token = tokenizer.eos_token

    @classmethod
    def load(cls, path: str, model: ModelSettings, decode: DecodeSettings) -> CTranslate2Backend:
        ct2 = import_ctranslate2()
        if not is_ctranslate2_dir(path):
            raise ModelError(
                f"{path} is not a CTranslate2 model folder (no model.bin); "
                "make one with `invoke export --format ctranslate2`"
            )
        device, index = pick_device(ct2, model.device)
        info = read_info(path)
        compute_type = pick_compute_type(ct2, model, device, index, info.get("quantization"))
        threads = cpu_threads(model.threads, path, info.get("quantization"), device)
        tokenizer = load_tokenizer(path, model.trust_remote_code)
        generation = load_generation(path, decode)
        lanes = threads if device == "cpu" else 1
        try:
            translator = ct2.Translator(
                path,
                device=device,
                device_index=index,
                compute_type=compute_type,
                inter_threads=lanes,  # batches side by side, one core each: see concurrent_batches
                intra_threads=threads // lanes,
            )
        except (RuntimeError, ValueError) as exc:
            raise ModelError(f"cannot load the CTranslate2 model in {path}: {first_line(exc)}") from exc
        exported_limit = info.get("max_source_length") or DEFAULT_SOURCE_LIMIT
        limit = min(model.max_source_length or DEFAULT_SOURCE_LIMIT, exported_limit)
        label = f"cuda:{index}" if device == "cuda" else "cpu"
        return cls(translator, tokenizer, generation, limit, label, threads, lanes)

    def encode(self, texts: Sequence[str]) -> list[Encoded]:
        """Token ids per text, cut to the model's limit (keeping the final </s>), as the transformers backend."""
        return encode_texts(self.tokenizer, texts, self.max_source_length)

    def generate(self, batch: Sequence[Sequence[int]]) -> list[Generated]:
        """Summaries for a batch of id rows; OutOfMemory when the GPU runs out."""
        tokens = [self.tokenizer.convert_ids_to_tokens(list(row)) for row in batch]
        try:
            results = self.translator.translate_batch(tokens, max_batch_size=0, **self.decoding.kwargs())
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower():
                raise OutOfMemory(str(exc)) from exc
            raise
        return [self._summary(result.hypotheses[0]) for result in results]

    def _summary(self, hypothesis: list[str]) -> Generated:
        """Decoded text, and tokens counted as transformers counts them (</s> included, forced or not)."""
        ids = self.tokenizer.convert_tokens_to_ids(hypothesis)
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        ended = bool(hypothesis) and hypothesis[-1] == self.eos_token
        tokens = len(hypothesis) + (1 if self.decoding.forced_eos and not ended else 0)
        return Generated(clean(text), tokens)

    def describe(self) -> dict[str, object]:
        settings = generation_summary(self.generation)
        return {
            "backend": self.name,
            "device": self.device,
            "dtype": self.translator.compute_type,
            "threads": self.threads,
            "concurrent_batches": self.concurrent_batches,
            "max_source_length": self.max_source_length,
            "generation": settings,
            "translate_options": self.decoding.kwargs(),
        }
