"""Fine-tune Pegasus on SAMSum-style chats with ``Seq2SeqTrainer``; the run folder is a usable model.

The Trainer does the heavy lifting: length-grouped batches, gradient accumulation, bf16,
gradient checkpointing, batch-size back-off on CUDA OOM, checkpoints, resume, best-checkpoint
selection and ``accelerate launch``. This module supplies the data, the ROUGE metric, the
decoding settings and the files a person reads afterwards.

Entry points: ``invoke finetune`` and ``python -m dialogsum_batch.training`` (which is what
``accelerate launch -m dialogsum_batch.training ...`` runs on every process); both set the CUDA
allocator variables before this module imports torch.
"""

from __future__ import annotations

import ast
import copy
import logging
import pickle
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    EvalPrediction,
    GenerationConfig,
    PreTrainedTokenizerBase,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
)
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import get_last_checkpoint

from .. import rouge
from ..backends.resolve import PickleOnlyError, resolve_model
from ..errors import ConfigError, ModelError
from ..fixtures.tiny import build_tiny_model
from ..logs import Say, library_bars, stderr_is_terminal
from ..modelfiles import LOAD_ERRORS, Advice, check_transformers_folder, load_failure, read_json
from . import data, report
from .config import TINY_MODEL, TrainConfig
from .runtime import prepare_cuda_allocator

__all__ = ["finetune"]


def log_to_stderr(message: str) -> None:
    """The default ``log``: one line on stderr, where messages for people go."""
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Prepared:
    """A trainer ready to run, and what the model card needs to know about its inputs."""

    trainer: Seq2SeqTrainer
    decoding: GenerationConfig  # the tuned decoding; the Trainer fills defaults into the model's copy
    train_records: int
    eval_records: int
    device: str


# ------------------------------------------------------------------------------ the run


def finetune(config: TrainConfig, log: Say = log_to_stderr, *, callbacks: Sequence[TrainerCallback] = ()) -> Path:
    """Train as ``config`` says and return the run folder (final model, tokenizer, metrics, card).

    ``callbacks`` are extra ``TrainerCallback`` objects (tests use one to interrupt a run).
    """
    prepare_cuda_allocator()
    config.check()
    run_dir = Path(config.output_dir)
    args = training_arguments(config, run_dir, has_eval=True)  # also joins the processes of accelerate launch
    log = log if args.process_index == 0 else _silent
    checkpoint = resume_point(run_dir, config.resume, log)
    if checkpoint and is_complete(Path(checkpoint), config) and (run_dir / "model.safetensors").is_file():
        log(f"{run_dir} already finished at {Path(checkpoint).name}: nothing to resume")
        return run_dir
    with torch_threads(config.torch_threads), library_bars():  # no tqdm bars under cron or CI: lines instead
        prepared = prepare(config, args, log, callbacks)
        if prepared.trainer.is_world_process_zero():
            report.write_config(run_dir, config)  # before training: a crashed run still says what it was
        with quiet_known_noise(prepared.trainer.model):
            result = prepared.trainer.train(resume_from_checkpoint=checkpoint)
            finish(prepared, config, run_dir, result.metrics, log)
    return run_dir


def resume_point(run_dir: Path, resume: bool, log: Say) -> str | None:
    """The checkpoint to resume from; ConfigError when a run is there and resume was not asked."""
    last = get_last_checkpoint(str(run_dir)) if run_dir.is_dir() else None
    if resume:
        log(f"resuming from {Path(last).name}" if last else f"no checkpoint in {run_dir}: starting from scratch")
        return last
    found = Path(last).name if last else "model.safetensors" if (run_dir / "model.safetensors").exists() else None
    if found:
        raise ConfigError(
            f"{run_dir} already holds a run ({found}); pass --resume (resume=true) to continue it, "
            "or choose another --output-dir"
        )
    return None


def is_complete(checkpoint: Path, config: TrainConfig) -> bool:
    """Whether ``checkpoint`` already reached the run's length (max_steps, else the epochs)."""
    state = read_json(checkpoint / "trainer_state.json")
    if not isinstance(state, dict):  # missing, unreadable or not ours: train on
        return False
    if config.max_steps > 0:
        return state.get("global_step", 0) >= config.max_steps
    return state.get("epoch", 0) >= config.num_train_epochs - 1e-6


def prepare(
    config: TrainConfig, args: Seq2SeqTrainingArguments, log: Say, callbacks: Sequence[TrainerCallback]
) -> Prepared:
    """Model, data and trainer; downloads and builds happen once, on the main process first."""
    run_dir = Path(args.output_dir)
    with args.main_process_first(desc="base model and corpus"):
        model_path = base_model_path(config, run_dir, log)
        check_weights(model_path, config)  # a refusal comes before the corpus is downloaded and built
        corpus = data.build_corpus(config, log)
    log(f"loading the base model from {model_path}")
    tokenizer, model = load_model(model_path, config)
    tuned = decoding(config, model.generation_config)
    model.generation_config = copy.deepcopy(tuned)
    for name, split in corpus.items():
        log(f"tokenizing {name}: {len(split):,} records")
    with args.main_process_first(desc="tokenizing"):
        splits = {name: data.tokenize(split, tokenizer, config, name) for name, split in corpus.items()}
    for name, split in splits.items():
        log(f"{name}: {data.describe_lengths(split, config)}")
    evaluation = splits.get("validation")
    if evaluation is None:
        log("no validation records: training without evaluation; the last step's weights are kept")
        args = training_arguments(config, run_dir, has_eval=False)
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=splits["train"],
        eval_dataset=evaluation,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, pad_to_multiple_of=8 if args.bf16 else None),
        processing_class=tokenizer,
        compute_metrics=rouge_metrics(tokenizer) if evaluation is not None else None,
        callbacks=[LossLines(log), *callbacks],
    )
    quiet_progress(trainer)
    device = describe_device(args)
    log(f"training on {device}; {config.effective_batch_size} rows per update per device")
    return Prepared(trainer, tuned, len(splits["train"]), len(evaluation) if evaluation is not None else 0, device)


def finish(prepared: Prepared, config: TrainConfig, run_dir: Path, train_metrics: dict, log: Say) -> None:
    """Save the (best) model, score it with the saved decoding, write metrics, curves and card."""
    trainer = prepared.trainer
    history = list(trainer.state.log_history)  # before the final evaluation, which decodes differently
    trainer.model.generation_config = copy.deepcopy(prepared.decoding)  # saved as generation_config.json
    trainer.save_model(str(run_dir))
    trainer.save_metrics("train", train_metrics)
    eval_metrics: dict[str, float] = {}
    if trainer.eval_dataset is not None:
        eval_metrics = trainer.evaluate(num_beams=config.num_beams)
        trainer.save_metrics("eval", eval_metrics)
    trainer.save_state()
    if not trainer.is_world_process_zero():
        return
    summary = report.RunSummary(
        prepared.train_records,
        prepared.eval_records,
        trainer.state.global_step,
        train_metrics,
        eval_metrics,
        _folder_name(trainer.state.best_model_checkpoint),
        prepared.device,
        trainer.args.world_size,
    )
    report.write_history(run_dir, trainer.state.log_history)
    report.write_curves(run_dir, history, title=f"{run_dir.name}: {config.base_model}")
    report.write_card(run_dir, config, summary)
    log(f"model, tokenizer, metrics and card written to {run_dir}")


def _folder_name(path: str | None) -> str | None:
    return None if path is None else Path(path).name


def _silent(message: str) -> None:
    """Log of the other processes under ``accelerate launch``: the main one speaks for all."""


MISSING_KEYS = "There were missing keys in the checkpoint model loaded: "


class _KnownNoise(logging.Filter):
    """Drops two transformers warnings that Seq2SeqTrainer itself causes on every healthy run.

    * generate()'s "Both max_new_tokens and max_length seem to have been set": after each
      evaluation batch the Trainer fills max_length=20 into the model's generation config;
      max_new_tokens still governs.
    * "There were missing keys ... loaded" when the best checkpoint is loaded back, listing
      only tied weights (embeddings, lm_head): safetensors store them once, and loading the
      shared tensor restores them all. Any other missing key is still reported.
    """

    def __init__(self, tied_keys: set[str]):
        super().__init__()
        self.tied_keys = tied_keys

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "seem to have been set" in message:
            return False
        if message.startswith(MISSING_KEYS):
            try:
                missing = set(ast.literal_eval(message[len(MISSING_KEYS) :].strip().rstrip(".")))
            except (ValueError, SyntaxError):
                return True
            return not missing <= self.tied_keys
        return True


@contextmanager
def quiet_known_noise(model: Any) -> Iterator[None]:
    """Install _KnownNoise on the generation and trainer loggers for the length of a run."""
    loggers = [logging.getLogger(name) for name in ("transformers.generation.utils", "transformers.trainer")]
    noise = _KnownNoise(set(getattr(model, "all_tied_weights_keys", None) or {}))
    for logger in loggers:
        logger.addFilter(noise)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(noise)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Use ``count`` intra-op threads for the run (0 leaves torch's choice), then restore."""
    if not count:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------- the model


def base_model_path(config: TrainConfig, run_dir: Path, log: Say) -> str:
    """A local folder holding the base model: the tiny one built into the run, or a resolved Hub id."""
    if config.base_model == TINY_MODEL:
        target = run_dir / "base-model"
        if (target / "config.json").is_file():
            return str(target)  # a resumed run keeps the weights it started from
        log(f"building the tiny random Pegasus in {target}")
        return str(build_tiny_model(target, seed=config.seed))
    try:
        return resolve_model(config.base_model, allow_pickle=config.allow_pickle, log=log)  # fails in seconds offline
    except PickleOnlyError as exc:
        raise ModelError(f"base {exc.reason}; set allow_pickle=true to load them anyway") from None
    except ModelError as exc:  # its advice names dialogsum-batch's options; give this command's
        reason = str(exc).split("; pass --model")[0]
        raise ModelError(
            f"base {reason}; pass --base-model DIR (a local copy), or run where the Hub is "
            "reachable once to fill the cache"
        ) from None


BASE_MODEL_ADVICE = Advice(
    pickle="set allow_pickle=true to load *.bin files",
    ctranslate2="set base_model to the transformers model it was converted from",
)


def check_weights(path: str, config: TrainConfig) -> None:
    """ModelError, one line, unless the base model's folder holds weights this run may read."""
    named = Path(config.base_model).expanduser() == Path(path)
    check_transformers_folder(
        path,
        config.allow_pickle,
        BASE_MODEL_ADVICE,
        name=config.base_model if named else f"{config.base_model} ({path})",
    )


def load_model(path: str, config: TrainConfig) -> tuple[PreTrainedTokenizerBase, Any]:
    """Tokenizer and fp32 weights (mixed precision is the Trainer's job); safetensors unless allowed."""
    check_weights(path, config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=config.trust_remote_code)
        model = AutoModelForSeq2SeqLM.from_pretrained(
            path,
            dtype=torch.float32,
            use_safetensors=None if config.allow_pickle else True,
            trust_remote_code=config.trust_remote_code,
        )
    except LOAD_ERRORS as exc:  # a hostile pickle is refused by torch's weights_only loading: one line too
        if isinstance(exc, pickle.UnpicklingError):
            raise load_failure(f"cannot load {config.base_model} from {path}", exc) from exc
        raise ModelError(f"cannot load {config.base_model} from {path}: {_first_line(exc)}") from exc
    # Pegasus' forward takes **kwargs but averages its loss itself, ignoring num_items_in_batch; left True,
    # the Trainer multiplies that mean by the process count and skips the accumulation divide.
    model.accepts_loss_kwargs = False
    return tokenizer, model


def decoding(config: TrainConfig, base: GenerationConfig) -> GenerationConfig:
    """The base model's generation config with the run's decoding; saved as generation_config.json."""
    tuned = copy.deepcopy(base)
    beams = config.num_beams > 1
    tuned.update(
        num_beams=config.num_beams,
        max_new_tokens=config.max_new_tokens,
        max_length=None,
        min_length=config.min_length,
        no_repeat_ngram_size=config.no_repeat_ngram_size,
        length_penalty=config.length_penalty if beams else None,
        early_stopping=True if beams else None,
    )
    try:
        tuned.validate(strict=True)
    except ValueError as exc:
        raise ConfigError(f"decoding settings: {_first_line(exc)}") from None
    return tuned


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2]) if lines else type(exc).__name__


# ------------------------------------------------------------------------ trainer pieces


def training_arguments(config: TrainConfig, run_dir: Path, has_eval: bool) -> Seq2SeqTrainingArguments:
    """Seq2SeqTrainingArguments for the config; CUDA-only defaults resolved here."""
    cuda = torch.cuda.is_available()
    bf16 = config.bf16 if config.bf16 is not None else cuda and torch.cuda.is_bf16_supported()
    try:
        return Seq2SeqTrainingArguments(
            output_dir=str(run_dir),
            seed=config.seed,
            report_to="none",
            disable_tqdm=not stderr_is_terminal(),
            num_train_epochs=config.num_train_epochs,
            max_steps=config.max_steps,
            learning_rate=config.learning_rate,
            lr_scheduler_type=config.lr_scheduler_type,
            warmup_steps=int(config.warmup_steps) if config.warmup_steps >= 1 else config.warmup_steps,
            weight_decay=config.weight_decay,
            label_smoothing_factor=config.label_smoothing,
            max_grad_norm=config.max_grad_norm,
            optim=optimizer_name(config.optimizer, cuda),
            per_device_train_batch_size=config.per_device_train_batch_size,
            per_device_eval_batch_size=config.per_device_eval_batch_size,
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            bf16=bf16,
            fp16=False,  # never fp16: Pegasus overflows in it
            activation_checkpointing=_auto(config.gradient_checkpointing, cuda),  # was gradient_checkpointing
            auto_find_batch_size=_auto(config.auto_find_batch_size, cuda),
            train_sampling_strategy="group_by_length",  # similar lengths per batch: little padding
            logging_strategy="steps",
            logging_steps=config.logging_steps,
            logging_first_step=True,
            eval_strategy="steps" if has_eval else "no",
            eval_steps=config.eval_steps,
            save_strategy="steps",
            save_steps=config.save_steps,
            save_total_limit=config.save_total_limit,
            load_best_model_at_end=has_eval,
            metric_for_best_model=config.metric_for_best_model,
            greater_is_better=config.metric_for_best_model != "loss",
            predict_with_generate=True,
            generation_num_beams=config.eval_num_beams,
            dataloader_pin_memory=cuda,
            use_cpu=not cuda,  # else torchrun on a CPU host leaves every process training alone
        )
    except ValueError as exc:
        raise ConfigError(f"training arguments: {_first_line(exc)}") from None


def _auto(value: bool | None, cuda: bool) -> bool:
    """``None`` means: on when training on CUDA."""
    return cuda if value is None else value


def optimizer_name(optimizer: str, cuda: bool) -> str:
    """The Trainer's ``optim`` for ``adamw`` / ``adafactor``; fused AdamW where CUDA has it."""
    if optimizer == "adafactor":
        return "adafactor"
    return "adamw_torch_fused" if cuda else "adamw_torch"


def describe_device(args: Seq2SeqTrainingArguments) -> str:
    """E.g. ``cuda (NVIDIA H200), bf16, gradient checkpointing`` or ``cpu, fp32, 1 thread``."""
    device = args.device
    if device.type == "cuda":
        parts = [f"cuda ({torch.cuda.get_device_name(device)})", "bf16" if args.bf16 else "fp32"]
        parts += ["gradient checkpointing"] if args.activation_checkpointing else []
        parts += ["batch-size back-off"] if args.auto_find_batch_size else []
    else:
        threads = torch.get_num_threads()
        parts = [device.type, "bf16" if args.bf16 else "fp32", f"{threads} thread{'s' if threads > 1 else ''}"]
    return ", ".join(parts)


def rouge_metrics(tokenizer: PreTrainedTokenizerBase) -> Callable[[EvalPrediction], dict[str, float]]:
    """compute_metrics for the Trainer: ROUGE-1/2/L/Lsum (F x100) and mean generated length."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def compute(prediction: EvalPrediction) -> dict[str, float]:
        generated = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        generated = np.where(generated < 0, pad, generated)  # -100 marks padding across batches
        labels = np.where(prediction.label_ids < 0, pad, prediction.label_ids)
        texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
        references = tokenizer.batch_decode(labels, skip_special_tokens=True)
        scores = rouge.RougeMean()
        for text, reference in zip(texts, references):
            scores.add(rouge.score(text, reference))
        lengths = (generated[:, 1:] != pad).sum(axis=1)  # without the decoder start token
        return {**{k: round(v, 4) for k, v in scores.mean().items()}, "gen_len": round(float(lengths.mean()), 2)}

    return compute


class LossLines(TrainerCallback):
    """One readable stderr line per Trainer log (training loss, validation scores, the end) and checkpoint."""

    def __init__(self, log: Say):
        self.log = log

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            self.log(describe_log(state.global_step, state.max_steps, logs))

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.log(f"step {state.global_step}/{state.max_steps} saved checkpoint-{state.global_step}")


def describe_log(step: int, max_steps: int, logs: Mapping[str, Any]) -> str:
    """``step 100/300 epoch 0.53 loss 2.412 lr 2.1e-03`` and the like."""
    head = f"step {step}/{max_steps}"
    value = {key: float(v) for key, v in logs.items() if isinstance(v, (int, float, str)) and _is_number(v)}
    if "eval_rougeL" in value or "eval_loss" in value:
        rouge_text = f"{rouge.heading(rouge.SHORT_TYPES)} {rouge.figures(value, rouge.SHORT_TYPES, '/', 'eval_')}"
        return (
            f"{head} validation: loss {value.get('eval_loss', float('nan')):.4f} {rouge_text} "
            f"gen_len {value.get('eval_gen_len', float('nan')):.1f} ({value.get('eval_runtime', 0):.1f} s)"
        )
    if "train_runtime" in value:
        return (
            f"{head} training done: mean loss {value.get('train_loss', float('nan')):.4f} in "
            f"{value['train_runtime']:.1f} s ({value.get('train_steps_per_second', 0):.2f} steps/s)"
        )
    if "loss" in value:
        return (
            f"{head} epoch {value.get('epoch', 0):.2f} loss {value['loss']:.4f} "
            f"lr {value.get('learning_rate', 0):.2e} grad_norm {value.get('grad_norm', float('nan')):.3f}"
        )
    return f"{head} " + " ".join(f"{key} {number:g}" for key, number in value.items())


def _is_number(text: Any) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


class ProgressBarOnly(ProgressCallback):
    """The Trainer's tqdm bars (stderr) without the dicts it prints to stdout; LossLines logs instead."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        return None


def quiet_progress(trainer: Seq2SeqTrainer) -> None:
    """Keep stdout for data: swap the Trainer's printing callbacks for the bar alone."""
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if not trainer.args.disable_tqdm:
        trainer.add_callback(ProgressBarOnly)
