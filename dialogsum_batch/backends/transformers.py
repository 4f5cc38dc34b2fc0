"""PyTorch backend: a transformers seq2seq model on CPU or CUDA, fp32 or bf16."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, GenerationConfig
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from ..config import DecodeSettings, ModelSettings
from ..errors import ModelError, refuse_float16
from ..logs import library_bars, quiet_transformers
from ..modelfiles import LOAD_ERRORS, check_transformers_folder, load_failure
from .common import DEFAULT_SOURCE_LIMIT, Encoded, Generated, OutOfMemory, clean, encode_texts, generation_summary
from .common import auto_threads as shared_auto_threads

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
    refuse_float16(asked, forced)
    if asked != "auto":
        return DTYPES[asked]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


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
        check_transformers_folder(path, model.allow_pickle)  # safetensors, or pickle when allowed: one line if not
        quiet_transformers()
        try:
            with library_bars(show=False):  # stderr belongs to our own log and progress bar
                tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=model.trust_remote_code)
                network = AutoModelForSeq2SeqLM.from_pretrained(
                    path,
                    dtype=dtype,
                    use_safetensors=None if model.allow_pickle else True,
                    trust_remote_code=model.trust_remote_code,
                )
        except LOAD_ERRORS as exc:  # a hostile pickle is refused by torch's weights_only loading: one line too
            raise load_failure(f"cannot load model from {path}", exc) from exc
        network.to(device).eval()
        if device.type == "cpu":
            torch.set_num_threads(model.threads or auto_threads(network))
        generation = copy.deepcopy(network.generation_config)
        generation.update(**decode.overrides())
        limit = min(model.max_source_length or DEFAULT_SOURCE_LIMIT, source_limit(network.config))
        return cls(network, tokenizer, generation, limit)

    def encode(self, texts: Sequence[str]) -> list[Encoded]:
        """Token ids per text, cut to the model's limit (keeping the final </s>)."""
        return encode_texts(self.tokenizer, texts, self.max_source_length)

    def generate(self, batch: Sequence[Sequence[int]]) -> list[Generated]:
        """Summaries for a batch of id rows; OutOfMemory when CUDA runs out."""
        input_ids, mask, ragged = self._pad(batch)
        try:
            with torch.inference_mode():
                output = self._generate(input_ids, mask, ragged)
        except torch.OutOfMemoryError as exc:
            torch.cuda.empty_cache()
            raise OutOfMemory(str(exc)) from exc
        texts = self.tokenizer.batch_decode(output, skip_special_tokens=True)
        lengths = (output[:, 1:] != self.pad_id).sum(dim=1).tolist()
        return [Generated(clean(text), int(n)) for text, n in zip(texts, lengths, strict=True)]

    def _generate(self, input_ids: torch.Tensor, mask: torch.Tensor, ragged: bool) -> torch.Tensor:
        """Encode with a key-padding mask, then decode from the encoder's output.

        transformers expands a 2D mask into a (batch, 1, source, source) one for the encoder's
        self-attention; SDPA on that is slower and holds an extra square per row. A
        (batch, 1, 1, source) mask gives identical results, faster and in less memory; rows of
        one length need none.
        """
        keys = mask.bool()[:, None, None, :] if ragged else None
        encoded = self.model.get_encoder()(input_ids=input_ids, attention_mask=keys, return_dict=True)
        extra = {CACHE_ARGUMENT: beam_search_cache(self.model.config)} if (self.generation.num_beams or 1) > 1 else {}
        return self.model.generate(
            encoder_outputs=encoded, attention_mask=mask, generation_config=self.generation, **extra
        )

    def _pad(self, batch: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """Right-padded ids, the 0/1 mask (on the model's device) and whether any row was padded."""
        sizes = [len(row) for row in batch]
        longest = max(sizes)
        flat: list[int] = []
        for row, size in zip(batch, sizes, strict=True):
            flat.extend(row)
            flat.extend([self.pad_id] * (longest - size))
        ids = torch.tensor(flat, dtype=torch.long).view(len(batch), longest)
        mask = (torch.arange(longest)[None, :] < torch.tensor(sizes)[:, None]).long()
        device = self.model.device
        return ids.to(device), mask.to(device), min(sizes) < longest

    def describe(self) -> dict[str, object]:
        settings = generation_summary(self.generation)
        return {
            "backend": self.name,
            "device": self.device,
            "dtype": str(self.model.dtype).replace("torch.", ""),
            "threads": torch.get_num_threads(),
            "max_source_length": self.max_source_length,
            "generation": settings,
        }


class BeamSearchCache(EncoderDecoderCache):
    """An encoder-decoder cache whose beam reordering leaves the cross-attention keys and values alone.

    Beam search reorders the whole cache after every step, but a beam only ever moves to another
    beam of the same input, and all beams of one input hold the same encoder keys and values:
    reordering them copies every layer's cross-attention cache for nothing. Skipping it ran the
    mid-size benchmark model 1.7-1.9x faster with 4 beams, with identical output.
    """

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.self_attention_cache.reorder_cache(beam_idx)


def beam_search_cache(config) -> BeamSearchCache:
    decoder = config.get_text_config(decoder=True)
    return BeamSearchCache(DynamicCache(config=decoder), DynamicCache(config=decoder))


def cache_argument() -> str:
    """The name generate() takes a cache under (``cache`` in transformers 5, ``past_key_values`` before)."""
    try:
        from transformers.generation.utils import ALL_CACHE_NAMES

        return ALL_CACHE_NAMES[0]
    except (ImportError, IndexError):
        return "past_key_values"


CACHE_ARGUMENT = cache_argument()


def auto_threads(model) -> int:
    """CPU threads for ``--threads 0``: the rule both backends share (``common.auto_threads``) on this model's size."""
    return shared_auto_threads(sum(p.numel() for p in model.parameters()))


def source_limit(config) -> int:
    return int(getattr(config, "max_position_embeddings", DEFAULT_SOURCE_LIMIT) or DEFAULT_SOURCE_LIMIT)
