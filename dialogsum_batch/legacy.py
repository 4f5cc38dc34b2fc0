"""Transformers-4-era Pegasus folders, built offline from the tiny model: legacy checkpoints for tests.

The public SAMSum Pegasus models (``google/pegasus-cnn_dailymail``, ``transformersbook/pegasus-samsum``)
were saved by transformers 4: a SentencePiece ``spiece.model`` with legacy ``tokenizer_config.json`` and
``special_tokens_map.json`` (ids offset by 103: ``<pad>``, ``</s>``, ``<mask_1>``, ``<mask_2>``,
``<unk_2>``..``<unk_102>`` come first), decoding settings inside ``config.json``, and neither
``tokenizer.json`` nor ``generation_config.json``. This module writes that layout from a tiny model
folder (``dialogsum_batch.tiny``), weights as ``model.safetensors`` or, like the base model's main
branch, as ``pytorch_model.bin`` only.

The result is the tiny model under another numbering: the SentencePiece model holds the tiny
vocabulary's pieces and scores, and embedding row ``sp_id + 103`` is the tiny model's row for the same
piece. The pretraining-only ids (``<unk_2>``..``<unk_102>``) get a logit bias of -10,000, so they are
never generated, and the legacy folder summarizes exactly as the tiny one does with the same settings.

    python -m dialogsum_batch.legacy TINY_DIR OUTPUT_DIR [--pickle-only]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .errors import DialogsumError, ModelError

OFFSET = 103  # ids before the SentencePiece pieces in every public Pegasus vocabulary
# The decoding keys that google/pegasus-cnn_dailymail's config.json carries (the book's pegasus-samsum too).
DECODING = {"num_beams": 8, "length_penalty": 0.8, "max_length": 128, "min_length": 32}
UNUSED_BIAS = -1e4  # logit bias of the pretraining-only ids: never generated (bfloat16-safe)
TINY_SPECIALS = 5  # <pad> </s> <mask_1> <mask_2> <unk> come first in the tiny vocabulary (tiny.SPECIAL_PIECES)
TINY_UNK = 4  # the tiny vocabulary's <unk>
SHARED_HEAD = 4  # <pad> </s> <mask_1> <mask_2>: the same ids in both numberings
SPIECE_SPECIALS = ("<pad>", "</s>", "<unk>")  # the public spiece.model's first pieces: ids 0, 1, 2
LEGACY_UNK = OFFSET + 2  # <unk>'s id in the legacy numbering; ids SHARED_HEAD..LEGACY_UNK-1 are pretraining-only
TRANSFORMERS_4 = "4.12.0.dev0"
# Config keys transformers 5 writes that a transformers-4 config.json does not carry.
NEW_CONFIG_KEYS = ("dtype", "transformers_version", "is_decoder", "tie_word_embeddings")
TIED_NAMES = ("model.encoder.embed_tokens.weight", "model.decoder.embed_tokens.weight", "lm_head.weight")


# ---------------------------------------------------------------------------- tokenizer


def tiny_vocabulary(tiny_dir: Path) -> list[tuple[str, float]]:
    """(piece, score) of the tiny model's Unigram vocabulary, its special tokens first."""
    try:
        model = json.loads((tiny_dir / "tokenizer.json").read_text(encoding="utf-8"))["model"]
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"{tiny_dir} holds no tiny-model tokenizer.json ({exc})") from None
    vocab = [(str(piece), float(score)) for piece, score in model["vocab"]]
    if model.get("type") != "Unigram" or model.get("unk_id") != TINY_UNK or len(vocab) <= TINY_SPECIALS:
        raise ModelError(f"{tiny_dir}/tokenizer.json is not a tiny Pegasus vocabulary (dialogsum_batch.tiny)")
    return vocab


def normalizer_spec(rule: str = "nmt_nfkc") -> Any:
    """The normalizer of a SentencePiece model trained with ``rule``, taken from a throwaway training.

    The public spiece.model files carry a compiled NFKC character map; transformers turns it into the
    fast tokenizer's normalizer, which then agrees with SentencePiece itself (line breaks included).
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["a b c"] * 4), model_writer=proto, model_type="unigram", vocab_size=8,
        hard_vocab_limit=False, normalization_rule_name=rule, num_threads=1, minloglevel=2,
    )
    model = model_pb2.ModelProto()
    model.ParseFromString(proto.getvalue())
    return model.normalizer_spec


def legacy_spiece(vocabulary: Sequence[tuple[str, float]]) -> bytes:
    """A serialized spiece.model: <pad> </s> <unk>, then the tiny pieces with their scores."""
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    piece_type = model_pb2.ModelProto.SentencePiece
    model = model_pb2.ModelProto()
    for piece, kind in zip(SPIECE_SPECIALS, (piece_type.CONTROL, piece_type.CONTROL, piece_type.UNKNOWN)):
        model.pieces.add(piece=piece, score=0.0, type=kind)
    for piece, score in vocabulary[TINY_SPECIALS:]:
        model.pieces.add(piece=piece, score=score, type=piece_type.NORMAL)
    spec = model.trainer_spec
    spec.model_type = model_pb2.TrainerSpec.UNIGRAM
    spec.vocab_size = len(model.pieces)
    spec.pad_id, spec.eos_id, spec.unk_id, spec.bos_id = 0, 1, 2, -1
    spec.pad_piece, spec.eos_piece, spec.unk_piece = SPIECE_SPECIALS
    spec.character_coverage = 1.0
    model.normalizer_spec.CopyFrom(normalizer_spec())
    return model.SerializeToString()


def special_tokens_map() -> dict[str, Any]:
    """special_tokens_map.json as transformers 4 wrote it for Pegasus."""
    return {
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
        "mask_token": "<mask_2>",
        "additional_special_tokens": ["<mask_1>"] + [f"<unk_{i}>" for i in range(2, OFFSET)],
    }


def tokenizer_config(max_positions: int) -> dict[str, Any]:
    """tokenizer_config.json as transformers 4 wrote it for the book's pegasus-samsum."""
    return {
        **special_tokens_map(),
        "mask_token_sent": "<mask_1>",
        "offset": OFFSET,
        "model_max_length": max_positions,
        "sp_model_kwargs": {},
        "special_tokens_map_file": None,
        "name_or_path": "google/pegasus-cnn_dailymail",
        "tokenizer_class": "PegasusTokenizer",
    }


# ---------------------------------------------------------------------------- model


def legacy_config(tiny: Mapping[str, Any], vocab_size: int) -> dict[str, Any]:
    """config.json in the transformers-4 layout: the tiny architecture, decoding keys inside."""
    config = {key: value for key, value in tiny.items() if key not in NEW_CONFIG_KEYS}
    config.update(
        vocab_size=vocab_size,
        _name_or_path="google/pegasus-cnn_dailymail",
        add_bias_logits=False,
        add_final_layer_norm=True,
        classif_dropout=0.0,
        classifier_dropout=0.0,
        extra_pos_embeddings=1,
        force_bos_token_to_be_generated=False,
        gradient_checkpointing=False,
        id2label={"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"},
        label2id={"LABEL_0": 0, "LABEL_1": 1, "LABEL_2": 2},
        num_hidden_layers=tiny.get("encoder_layers"),
        static_position_embeddings=True,
        task_specific_params={
            "summarization_cnn_dailymail": {"length_penalty": 0.8, "max_length": 128, "max_position_embeddings": 1024},
            "summarization_xsum": {"length_penalty": 0.8, "max_length": 64, "max_position_embeddings": 512},
        },
        torch_dtype="float32",
        transformers_version=TRANSFORMERS_4,
        **DECODING,
    )
    return dict(sorted(config.items()))


def legacy_rows(tiny_size: int) -> list[int]:
    """For each legacy id, the tiny id whose embedding row it takes (the tiny <unk> row for unused ids).

    Legacy: <pad> </s> <mask_1> <mask_2> <unk_2>..<unk_102> (ids 0-104), then the spiece.model pieces
    from its <unk> on (id 2 + 103 = 105). Tiny: <pad> </s> <mask_1> <mask_2> <unk> (0-4), then the pieces.
    """
    return list(range(SHARED_HEAD)) + [TINY_UNK] * (LEGACY_UNK - SHARED_HEAD) + list(range(TINY_UNK, tiny_size))


def legacy_weights(tiny_dir: Path) -> dict[str, Any]:
    """The tiny model's tensors with vocabulary rows renumbered; unused ids biased never to be generated."""
    import torch
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(tiny_dir / "model.safetensors"))
    except OSError as exc:
        raise ModelError(f"{tiny_dir}: cannot read model.safetensors ({exc})") from None
    size = tensors["model.shared.weight"].shape[0]
    rows = torch.tensor(legacy_rows(size))
    unused = slice(SHARED_HEAD, LEGACY_UNK)
    tensors["model.shared.weight"] = tensors["model.shared.weight"][rows].contiguous()
    bias = tensors["final_logits_bias"][:, rows].contiguous()
    bias[:, unused] = UNUSED_BIAS
    tensors["final_logits_bias"] = bias
    return tensors


def save_pickle(tensors: Mapping[str, Any], path: Path) -> None:
    """pytorch_model.bin as transformers 4 saved it: the state dict, tied weights under every name."""
    import torch

    state = dict(tensors)
    for name in TIED_NAMES:
        state[name] = state["model.shared.weight"]  # one storage, as in a tied model's state_dict()
    torch.save(state, path)


def build_legacy_checkpoint(tiny_dir: str | Path, output_dir: str | Path, pickle_only: bool = False) -> Path:
    """Write the transformers-4 layout of the tiny model in ``tiny_dir`` to ``output_dir``.

    Weights go to ``model.safetensors``, or with ``pickle_only`` to ``pytorch_model.bin`` alone.
    """
    from safetensors.torch import save_file

    source, out = Path(tiny_dir), Path(output_dir)
    vocabulary = tiny_vocabulary(source)
    tiny = json.loads((source / "config.json").read_text(encoding="utf-8"))
    tensors = legacy_weights(source)
    vocab_size = tensors["model.shared.weight"].shape[0]
    if vocab_size != len(vocabulary) - TINY_SPECIALS + LEGACY_UNK + 1:
        raise ModelError(f"{source}: the weights' vocabulary does not match tokenizer.json")
    out.mkdir(parents=True, exist_ok=True)
    (out / "spiece.model").write_bytes(legacy_spiece(vocabulary))
    write_json(out / "special_tokens_map.json", special_tokens_map())
    write_json(out / "tokenizer_config.json", tokenizer_config(int(tiny.get("max_position_embeddings", 1024))))
    write_json(out / "config.json", legacy_config(tiny, vocab_size))
    if pickle_only:
        save_pickle(tensors, out / "pytorch_model.bin")
    else:
        save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    return out


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m dialogsum_batch.legacy TINY_DIR OUTPUT_DIR [--pickle-only]``: build and print the folder."""
    parser = argparse.ArgumentParser(prog="python -m dialogsum_batch.legacy", description=__doc__.split("\n")[0])
    parser.add_argument("tiny_dir", type=Path, help="a tiny model folder (python -m dialogsum_batch.tiny)")
    parser.add_argument("output_dir", type=Path, help="folder to write the legacy checkpoint into")
    parser.add_argument("--pickle-only", action="store_true", help="weights as pytorch_model.bin, no safetensors")
    args = parser.parse_args(argv)
    try:
        out = build_legacy_checkpoint(args.tiny_dir, args.output_dir, args.pickle_only)
    except DialogsumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
