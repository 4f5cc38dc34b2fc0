"""PyTorch backend: a transformers seq2seq model on CPU or CUDA, fp32 or bf16."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, GenerationConfig

from ..config import DecodeSettings, ModelSettings
from ..errors import ModelError
from . import Encoded, Generated, OutOfMemory

DEFAULT_SOURCE_LIMIT = 1024
CHARS_PER_TOKEN_CAP = 32  # cut absurdly long inputs before tokenizing them whole
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def pick_device(asked: str) -> torch.device:
    """``auto`` means the first GPU when there is one, else the CPU."""
    if asked == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(asked)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"--device {asked} asked for, but torch sees no CUDA device")
    return device


def pick_dtype(asked: str, device: torch.device, forced: bool) -> torch.dtype:
    """bf16 on GPUs that have it, fp32 elsewhere; fp16 only when forced (Pegasus overflows in it)."""
    if asked == "float16" and not forced:
        raise ModelError("float16 makes Pegasus overflow (blank or NaN output); use bfloat16, or --force-dtype")
    if asked != "auto":
        return DTYPES[asked]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def check_weights(path: str, allow_pickle: bool) -> None:
    folder = Path(path)
    if any(folder.glob("*.safetensors")) or allow_pickle:
        return
    if any(folder.glob("*.bin")):
        raise ModelError(f"{path} has only pickle weights (*.bin); pass --allow-pickle to load them anyway")
    raise ModelError(f"{path} holds no model weights (*.safetensors)")


class TransformersBackend:
    """Batched ``generate`` with right padding, under ``torch.inference_mode``."""

    name = "transformers"

    def __init__(self, model, tokenizer, generation: GenerationConfig, max_source_length: int):
        self.model = model
        self.tokenizer = tokenizer
        self.generation = generation
        self.max_source_length = max_source_length
        self.device = str(model.device)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.eos_id = tokenizer.eos_token_id

    @classmethod
    def load(cls, path: str, model: ModelSettings, decode: DecodeSettings) -> TransformersBackend:
        device = pick_device(model.device)
        dtype = pick_dtype(model.dtype, device, model.force_dtype)
        check_weights(path, model.allow_pickle)
        if model.threads:
            torch.set_num_threads(model.threads)
        quiet_transformers()
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=model.trust_remote_code)
            network = AutoModelForSeq2SeqLM.from_pretrained(
                path,
                dtype=dtype,
                use_safetensors=None if model.allow_pickle else True,
                trust_remote_code=model.trust_remote_code,
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot load model from {path}: {first_line(exc)}") from exc
        network.to(device).eval()
        generation = copy.deepcopy(network.generation_config)
        generation.update(**decode.overrides())
        limit = min(model.max_source_length or DEFAULT_SOURCE_LIMIT, source_limit(network.config))
        return cls(network, tokenizer, generation, limit)

    def encode(self, texts: Sequence[str]) -> list[Encoded]:
        """Token ids per text, cut to the model's limit (keeping the final </s>)."""
        limit = self.max_source_length
        capped = [text[: limit * CHARS_PER_TOKEN_CAP] for text in texts]
        rows = self.tokenizer(capped, truncation=True, max_length=limit + 1)["input_ids"]
        return [self._cut(ids, limit) for ids in rows]

    def _cut(self, ids: list[int], limit: int) -> Encoded:
        if len(ids) <= limit:
            return Encoded(ids, False)
        tail = [self.eos_id] if self.eos_id is not None else []
        return Encoded(ids[: limit - len(tail)] + tail, True)

    def generate(self, batch: Sequence[Sequence[int]]) -> list[Generated]:
        """Summaries for a batch of id rows; OutOfMemory when CUDA runs out."""
        input_ids, mask = self._pad(batch)
        try:
            with torch.inference_mode():
                output = self.model.generate(input_ids=input_ids, attention_mask=mask, generation_config=self.generation)
        except torch.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            raise OutOfMemory(str(exc)) from exc
        texts = self.tokenizer.batch_decode(output, skip_special_tokens=True)
        lengths = (output[:, 1:] != self.pad_id).sum(dim=1).tolist()
        return [Generated(clean(text), int(n)) for text, n in zip(texts, lengths)]

    def _pad(self, batch: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        longest = max(len(row) for row in batch)
        padded = [list(row) + [self.pad_id] * (longest - len(row)) for row in batch]
        masks = [[1] * len(row) + [0] * (longest - len(row)) for row in batch]
        device = self.model.device
        return torch.tensor(padded, device=device), torch.tensor(masks, device=device)

    def describe(self) -> dict[str, object]:
        settings = {k: getattr(self.generation, k, None) for k in GENERATION_KEYS}
        return {"backend": self.name, "device": self.device, "dtype": str(self.model.dtype).replace("torch.", ""),
                "max_source_length": self.max_source_length, "generation": settings}


GENERATION_KEYS = ("num_beams", "max_new_tokens", "max_length", "min_length", "length_penalty", "no_repeat_ngram_size")


def quiet_transformers() -> None:
    """stderr belongs to our own log and progress bar: no weight-loading bars or advisory warnings."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def source_limit(config) -> int:
    return int(getattr(config, "max_position_embeddings", DEFAULT_SOURCE_LIMIT) or DEFAULT_SOURCE_LIMIT)


def clean(text: str) -> str:
    """Pegasus-cnn_dailymail writes <n> between sentences: make it a line break."""
    return "\n".join(part.strip() for part in text.split("<n>")).strip()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
