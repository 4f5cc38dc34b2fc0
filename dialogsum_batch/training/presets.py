"""Named fine-tuning recipes (``invoke finetune --preset NAME``) and the config a run starts from.

``load_train_config`` applies, lowest first: the preset (``pegasus-samsum`` unless the caller or the
file names another), then ``--config FILE``, then the command line's overrides.

``pegasus-samsum`` -- the real recipe, for a GPU: ``TrainConfig``'s defaults
    Base ``google/pegasus-cnn_dailymail`` on SAMSum (the original ``corpus.7z``: 14,732 train /
    818 validation / 819 test chats). Two public reference points frame it:

    * The book recipe (Tunstall, von Werra & Wolf, *Natural Language Processing with
      Transformers*, ch. 6; model card ``transformersbook/pegasus-samsum``): 1 epoch, batch 1 x 16
      accumulation (effective 16), lr 5e-5 linear, warmup 500, weight decay 0.01, inputs truncated at
      1024 tokens, decoding 8 beams / length penalty 0.8 / 128 tokens. It scores ROUGE-1/2/L
      42.8 / 20.1 / 34.1 on the test split; its validation loss is still falling after one
      epoch (cards that ran it for 3 epochs: 1.485 -> 1.358), so one epoch under-trains.
    * Pegasus-large runs reported at about 50.6 / 26.4 / 42.3 with lr 3e-5, batch 8, 5 epochs and
      inputs truncated at 512 tokens; public cards of that family land in the same region
      (``RobertoFont/pegasus-large-samsum``: 48.1 / 24.7 / 40.3 on validation after 3 epochs at
      lr 2e-5; ``Venkatesh4342/pegasus-samsum``: ROUGE-1 51.2 on validation at 0.8 epoch, lr 2e-5,
      batch 8), and they peak before the last epoch, so a run must keep its best checkpoint.

    The preset takes the stronger run's optimisation (lr 3e-5, batch 8, 5 epochs, 512 source
    tokens: >99% of SAMSum chats fit, and shorter inputs leave memory for batch 8 without
    accumulation) and keeps the book's warmup 500 and weight decay 0.01. It adds label smoothing
    0.1 (Pegasus' own fine-tuning setting), evaluation with generation every 500 steps on the
    validation split, and keeps the checkpoint with the best ROUGE-L, which guards against the
    late-epoch decline those cards show. Decoding is the book's (8 beams, length penalty 0.8,
    128 new tokens) with ``min_length`` 0: the cnn_dailymail checkpoint asks for at least 32
    tokens, longer than most SAMSum references (about 20 words). During training, evaluation
    uses 4 beams to halve its cost; the final evaluation and the saved
    ``generation_config.json`` use the full decoding. On CUDA, bf16 and gradient checkpointing
    are on and the batch backs off by itself on OOM; fp16 is never used (Pegasus overflows).

``smoke`` -- the same pipeline in about a minute on two CPU cores
    A tiny random Pegasus (``dialogsum_batch.fixtures.tiny``, built into ``RUN/base-model``) trained on
    the repository's ``data/*.jsonl`` plus 2,000 synthetic chats, validated on 32 synthetic
    chats. Tuned on two shared CPU cores, scoring 48 held-out synthetic chats: 300 steps of
    batch 16 at lr 5e-3 (5% warmup, linear decay) take the training loss from ~7.6 to ~1.5 and
    ROUGE-L from ~1 (random weights) to ~29; lr 3e-3 reached 24, 8e-3 27.5, and batch 32 for
    200 steps 21 at a higher cost. One torch thread: the model's matrices are too small to
    gain from a second one, and with the cores shared two threads ran 5-10x slower than one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .config import TINY_MODEL, TrainConfig, apply, read_config_file

DEFAULT_PRESET = "pegasus-samsum"

PEGASUS_SAMSUM = TrainConfig()  # the defaults are the recipe, so that a bare config trains the real thing

SMOKE = replace(
    PEGASUS_SAMSUM,
    # the tiny random Pegasus on the project's chats and synthetic ones
    base_model=TINY_MODEL,
    data="",
    project_data=True,
    synthetic_train=2000,
    synthetic_validation=32,
    output_dir="runs/smoke",
    # 300 steps of batch 16 on two CPU cores, one torch thread
    max_steps=300,
    learning_rate=5e-3,
    warmup_steps=0.05,
    weight_decay=0.0,
    label_smoothing=0.0,
    per_device_train_batch_size=16,
    per_device_eval_batch_size=32,
    max_source_length=256,
    max_target_length=64,
    bf16=False,
    gradient_checkpointing=False,
    auto_find_batch_size=False,
    torch_threads=1,
    logging_steps=25,
    eval_steps=100,
    save_steps=100,
    # greedy decoding, short summaries
    eval_num_beams=None,
    num_beams=1,
    length_penalty=1.0,
    max_new_tokens=64,
    no_repeat_ngram_size=3,
)

PRESETS: dict[str, TrainConfig] = {"pegasus-samsum": PEGASUS_SAMSUM, "smoke": SMOKE}


def get_preset(name: str) -> TrainConfig:
    """The preset called ``name``; ConfigError naming the known ones otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown preset '{name}'; known presets: {', '.join(PRESETS)}") from None


def load_train_config(
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """The checked config: ``preset`` (or the file's ``preset:``), then the file, then ``overrides``."""
    values = dict(read_config_file(config_file)) if config_file else {}
    named = preset or values.pop("preset", None) or DEFAULT_PRESET
    values.pop("preset", None)  # an explicit preset wins over the file's
    config = get_preset(str(named))
    if values:
        config = apply(config, values, str(config_file))
    if overrides:
        config = apply(config, overrides, "--set")
    return config.check()
