"""GPU check: bf16 training, expandable segments, the OOM split path and full-size throughput on CUDA.

Run it on a machine with a CUDA GPU (it refuses to run without one unless ``--cpu-smoke`` asks for a
quick rehearsal of the same code paths on the CPU with tiny sizes):

    python bench/gpu_check.py                 # everything, about 5 minutes on an H200
    python bench/gpu_check.py --only allocator,oom

Sections, each timed and recorded even when another one fails:

* ``allocator``: PYTORCH_CUDA_ALLOC_CONF and PYTORCH_ALLOC_CONF are set to expandable segments
  before CUDA starts; the allocator's own settings are read back to show they are in effect.
* ``train``: bf16 training steps of the ``smoke`` fine-tuning preset (dialogsum_batch.training.trainer);
  when that API is unavailable or fails, a plain bf16 training loop on the mid-size model.
* ``oom``: GPU memory nearly filled with a ballast tensor, then the Engine runs batches that cannot
  fit: they must be split (``oom_splits`` > 0) and every record must still come back.
* ``throughput``: a random Pegasus with pegasus-large dimensions in bf16: dialogues/s of the Engine
  at its default budget and a larger one, beside fixed batches of 8.
* ``backends``: what ``--backend auto`` should serve on a GPU. The same pegasus-large-sized weights through
  the Engine as transformers bf16 (today's GPU default, ``backends/choice.py``) and as CTranslate2
  bfloat16 and int8_bfloat16 (converted by the conversion cache's own code): dialogues/s and the share
  of summaries identical to transformers bf16's, greedy and 4 beams. CTranslate2 becomes the GPU default
  only if it is faster with the same summaries (random weights make near ties: read the share with that).

Figures go to ``$OUT/gpu_check.json`` when ``OUT`` is set, else ``bench/results/gpu_check.json``;
the file is rewritten after every section so a run cut short still leaves what it measured.
"""

from __future__ import annotations

import os

ALLOCATOR = "expandable_segments:True"
for _name in ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF"):  # before torch can initialise CUDA
    os.environ.setdefault(_name, ALLOCATOR)

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from common import MODELS, RESULTS_DIR, ModelSpec, dialogues, environment, random_pegasus  # noqa: E402

from dialogsum_batch.config import default_of  # noqa: E402

SECTIONS = ("allocator", "oom", "train", "throughput", "backends")
DEADLINE_S = 330  # sections (and throughput cases) not started by then are skipped: under 8 minutes in all


class Check:
    """Runs sections, records their figures and errors, and writes the JSON after each one."""

    def __init__(self, output: Path, device: str, cpu_smoke: bool):
        self.output = output
        self.device = device
        self.cpu_smoke = cpu_smoke
        self.started = time.perf_counter()
        self.figures: dict[str, Any] = {"device": device, "cpu_smoke": cpu_smoke, "sections": {}}

    def run(self, name: str, section: Callable[[Check], dict[str, Any]]) -> None:
        if time.perf_counter() - self.started > DEADLINE_S:
            self.figures["sections"][name] = {"skipped": f"past the {DEADLINE_S} s deadline"}
        else:
            began = time.perf_counter()
            try:
                result = {"ok": True, **section(self)}
            except Exception as exc:  # noqa: BLE001 -- one failed section must not hide the others
                result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            result["seconds"] = round(time.perf_counter() - began, 1)
            self.figures["sections"][name] = result
            release_gpu_memory()
            print(
                f"[gpu_check] {name}: {'ok' if result['ok'] else result['error']} ({result['seconds']} s)",
                file=sys.stderr,
                flush=True,
            )
        self.save()

    def save(self) -> None:
        self.figures["total_seconds"] = round(time.perf_counter() - self.started, 1)
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.output.write_text(json.dumps(self.figures, indent=2, default=str) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------- models


def build_random_pegasus(spec: ModelSpec, device: str, dtype: Any, seed: int = 0) -> tuple[Any, Any]:
    """A random Pegasus of ``spec``'s sizes built straight on ``device`` (no files) in ``dtype``, and its tokenizer."""
    model, tokenizer = random_pegasus(spec, seed, device)
    return model.to(dtype=dtype), tokenizer


def make_backend(model: Any, tokenizer: Any, beams: int, max_new_tokens: int) -> Any:
    from dialogsum_batch.backends.transformers import TransformersBackend

    generation = harness.decoding(model.generation_config, beams, max_new_tokens, no_repeat_ngram_size=0)
    return TransformersBackend(model, tokenizer, generation, 1024)


def run_engine(
    backend: Any, texts: list[str], batch_tokens: int, max_batch_size: int
) -> tuple[Any, int, list[dict], list[str]]:
    """The command's engine over ``texts`` (bad records kept aside, as ``--on-error skip``): its counts, the
    summary tokens generated, the outputs and the error lines."""
    say = lambda line: print(f"[engine] {line}", file=sys.stderr)  # noqa: E731
    engine = harness.engine(backend, log=say, batch_tokens=batch_tokens, max_batch_size=max_batch_size, on_error="skip")
    outcomes = list(engine.run(harness.records(texts)))
    outputs = [{"id": o.item.id, "summary": o.summary} for o in outcomes if o.error is None]
    errors = [str(o.error) for o in outcomes if o.error is not None]
    return replace(engine.counts), sum(o.tokens for o in outcomes), outputs, errors


def say_engine(line: str) -> None:
    print(f"[engine] {line}", file=sys.stderr)


def release_gpu_memory() -> None:
    """Drop what a finished section left in the caching allocator, so the next one starts clean."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


# ---------------------------------------------------------------------------- sections


def check_allocator(check: Check) -> dict[str, Any]:
    """Read the allocator's settings back after a first allocation: are expandable segments in effect?"""
    import torch

    found: dict[str, Any] = {name: os.environ.get(name) for name in ("PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF")}
    if check.cpu_smoke:
        found["settings_string"] = _try(lambda: torch._C._accelerator_getAllocatorSettings())
        return found
    probe = torch.empty(64 * 2**20, dtype=torch.uint8, device="cuda")  # the allocator starts on first use
    found["settings_string"] = _try(lambda: torch._C._accelerator_getAllocatorSettings())
    snapshot = _try(lambda: torch.cuda.memory._snapshot())
    if isinstance(snapshot, dict):
        settings = snapshot.get("allocator_settings")
        found["snapshot_allocator_settings"] = settings
        segments = snapshot.get("segments", [])
        found["segments_expandable"] = [s.get("is_expandable") for s in segments][:8]
    found["allocator_backend"] = _try(lambda: torch.cuda.get_allocator_backend())
    del probe
    settings = found.get("snapshot_allocator_settings")
    if isinstance(settings, dict) and "expandable_segments" in settings:
        found["expandable_segments_in_effect"] = bool(settings["expandable_segments"])
    elif any(found.get("segments_expandable") or []):
        found["expandable_segments_in_effect"] = True
    else:
        found["expandable_segments_in_effect"] = "expandable_segments:true" in str(found["settings_string"]).lower()
    if not found["expandable_segments_in_effect"]:
        raise RuntimeError(f"expandable segments are not in effect: {found}")
    return found


def _try(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 -- private APIs differ between torch versions
        return f"unavailable: {type(exc).__name__}: {exc}"


def check_training(check: Check) -> dict[str, Any]:
    """bf16 training steps of the smoke preset; a plain bf16 loop when that API is missing or fails."""
    result: dict[str, Any] = {}
    try:
        result["preset"] = train_smoke_preset(check)
    except Exception as exc:  # noqa: BLE001 -- the preset is another engineer's moving target
        result["preset_error"] = f"{type(exc).__name__}: {exc}"
        result["preset_traceback"] = traceback.format_exc()
    result["manual_bf16_loop"] = train_manual(check)
    return result


def train_smoke_preset(check: Check) -> dict[str, Any]:
    from dialogsum_batch.training.presets import get_preset
    from dialogsum_batch.training.trainer import finetune

    steps = 20 if check.cpu_smoke else 200
    with tempfile.TemporaryDirectory(prefix="gpu-check-train-") as tmp:
        config = replace(
            get_preset("smoke"),
            output_dir=str(Path(tmp) / "run"),
            bf16=not check.cpu_smoke,
            max_steps=steps,
            eval_steps=steps,
            save_steps=steps,
            logging_steps=max(1, steps // 10),
            torch_threads=1 if check.cpu_smoke else 0,
            synthetic_train=500 if check.cpu_smoke else 2000,
        )
        started = time.perf_counter()
        run_dir = finetune(config, log=lambda line: print(f"[finetune] {line}", file=sys.stderr))
        seconds = time.perf_counter() - started
        files = {p.name: json.loads(p.read_text()) for p in Path(run_dir).glob("*results.json")}
    return {
        "steps": steps,
        "bf16": config.bf16,
        "seconds": round(seconds, 1),
        "steps_per_second": round(steps / seconds, 2),
        "run_files": files,
    }


def train_manual(check: Check) -> dict[str, Any]:
    """AdamW steps under bf16 autocast on the mid-size model; the loss must stay finite and fall."""
    import torch

    spec = MODELS["tiny"] if check.cpu_smoke else MODELS["mid"]
    model, tokenizer = build_random_pegasus(spec, check.device, torch.float32)
    model.train()
    records = dialogues(64, "synthetic")
    batch = tokenizer(
        [r["dialogue"] for r in records[:16]], max_length=256, truncation=True, padding=True, return_tensors="pt"
    ).to(check.device)
    labels = tokenizer(
        [r["summary"] for r in records[:16]], max_length=64, truncation=True, padding=True, return_tensors="pt"
    )["input_ids"].to(check.device)
    labels[labels == tokenizer.pad_token_id] = -100
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    losses, steps = [], 5 if check.cpu_smoke else 40
    synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        with torch.autocast(device_type=check.device, dtype=torch.bfloat16):
            loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(round(loss.detach().item(), 4))
    synchronize()
    seconds = time.perf_counter() - started
    if not all(map(torch.isfinite, torch.tensor(losses))) or losses[-1] >= losses[0]:
        raise RuntimeError(f"bf16 training did not learn: losses {losses}")
    return {
        "model": spec.name,
        "steps": steps,
        "rows": 16,
        "seconds": round(seconds, 2),
        "steps_per_second": round(steps / seconds, 2),
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "peak_memory_gb": peak_gb(),
    }


def peak_gb() -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def check_oom_split(check: Check) -> dict[str, Any]:
    """Fill the GPU with a ballast tensor, then run batches too big for what is left: all records must return."""
    import torch

    model, tokenizer = build_random_pegasus(
        MODELS["mid"] if not check.cpu_smoke else MODELS["tiny"],
        check.device,
        torch.bfloat16 if not check.cpu_smoke else torch.float32,
    )
    backend = make_backend(model, tokenizer, beams=4, max_new_tokens=16)
    long_texts = [long_dialogue(r["dialogue"]) for r in dialogues(64, "synthetic")]
    run_engine(backend, long_texts[:2], batch_tokens=4096, max_batch_size=2)  # cuBLAS handles, workspaces
    ballast, left = fill_memory(check, leave_gb=1.0)
    try:
        stats, _, outputs, errors = run_engine(backend, long_texts, batch_tokens=64 * 1024, max_batch_size=64)
    finally:
        del ballast
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    ids = [o["id"] for o in outputs]
    figures = {
        "records": len(long_texts),
        "returned": len(outputs),
        "in_order": ids == [str(i) for i in range(len(long_texts))],
        "oom_splits": stats.oom_splits,
        "batches": stats.batches,
        "errors": errors,
        "free_gb_left_for_the_run": left,
    }
    if not check.cpu_smoke and (stats.oom_splits == 0 or len(outputs) != len(long_texts) or errors):
        raise RuntimeError(f"OOM split path not shown or records lost: {figures}")
    return figures


def long_dialogue(text: str) -> str:
    """A dialogue repeated to about 1,000 tokens, so batch memory is large and predictable."""
    return "\n".join([text] * 12)


def fill_memory(check: Check, leave_gb: float) -> tuple[Any, float | None]:
    """A ballast tensor taking all free GPU memory but ``leave_gb``; returns it and the GiB left."""
    import torch

    if check.cpu_smoke:
        return None, None
    torch.cuda.empty_cache()
    free, _ = torch.cuda.mem_get_info()
    size = max(0, free - int(leave_gb * 2**30))
    ballast = torch.empty(size, dtype=torch.uint8, device="cuda")
    return ballast, round(torch.cuda.mem_get_info()[0] / 2**30, 2)


def check_throughput(check: Check) -> dict[str, Any]:
    """Full-size random Pegasus in bf16: the Engine at two budgets beside fixed batches of 8."""
    import torch

    spec = MODELS["tiny"] if check.cpu_smoke else MODELS["large"]
    model, tokenizer = build_random_pegasus(
        spec, check.device, torch.bfloat16 if not check.cpu_smoke else torch.float32
    )
    texts = [r["dialogue"] for r in dialogues(16 if check.cpu_smoke else 512, "synthetic")]
    runs: dict[str, Any] = {
        "model": spec.name,
        "records": len(texts),
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
    }
    for beams in (1, 4):
        if time.perf_counter() - check.started > DEADLINE_S:
            runs[f"beams{beams}"] = {"skipped": f"past the {DEADLINE_S} s deadline"}
            continue
        backend = make_backend(model, tokenizer, beams=beams, max_new_tokens=64)
        run_engine(backend, texts[:8], 8192, 64)  # warm-up: CUDA kernels, cuBLAS handles
        for label, tokens, rows in (("ours-default", None, None), ("ours-large-budget", 65536, 256)):
            runs[f"beams{beams}/{label}"] = time_engine(backend, texts, tokens, rows)
        runs[f"beams{beams}/fixed-8"] = time_fixed(backend, texts[: max(8, len(texts) // 4)])
        print(f"[gpu_check] throughput beams={beams}: {json.dumps(runs, default=str)[-400:]}", file=sys.stderr)
    return runs


def check_backends(check: Check) -> dict[str, Any]:
    """transformers bf16 against CTranslate2 bfloat16 and int8_bfloat16 on the same weights, greedy and 4 beams."""
    import torch

    from dialogsum_batch.backends.ct2_convert import write_ctranslate2, write_info
    from dialogsum_batch.backends.ctranslate2 import CTranslate2Backend
    from dialogsum_batch.config import DecodeSettings, ModelSettings

    spec = MODELS["tiny"] if check.cpu_smoke else MODELS["large"]
    model, tokenizer = build_random_pegasus(spec, check.device, torch.float32 if check.cpu_smoke else torch.bfloat16)
    work = Path(tempfile.mkdtemp(prefix="gpu-check-backends-"))
    model.save_pretrained(work / "hf")  # weights and generation_config.json, as a training run leaves them
    tokenizer.save_pretrained(work / "hf")
    texts = [r["dialogue"] for r in dialogues(16 if check.cpu_smoke else 256, "synthetic")]
    types = ("float32", "int8") if check.cpu_smoke else ("bfloat16", "int8_bfloat16")
    runs: dict[str, Any] = {"model": spec.name, "records": len(texts), "ctranslate2_types": list(types)}
    for quantization in types:
        started = time.perf_counter()
        write_ctranslate2(work / "hf", work / quantization, quantization)
        write_info(work / quantization, work / "hf", "ctranslate2", quantization)
        runs[f"convert/{quantization}_seconds"] = round(time.perf_counter() - started, 1)
    for beams in (1, 4):
        if time.perf_counter() - check.started > DEADLINE_S:
            runs[f"beams{beams}"] = {"skipped": f"past the {DEADLINE_S} s deadline"}
            continue
        reference: list[str] = []
        backend = make_backend(model, tokenizer, beams=beams, max_new_tokens=64)
        run_engine(backend, texts[:8], 8192, 64)  # warm-up
        runs[f"beams{beams}/transformers"] = time_engine(backend, texts, None, None, keep=reference)
        decode = DecodeSettings(num_beams=beams, max_new_tokens=64, no_repeat_ngram_size=0)
        for quantization in types:
            ct2 = CTranslate2Backend.load(str(work / quantization), ModelSettings(device=check.device), decode)
            run_engine(ct2, texts[:8], 8192, 64)
            summaries: list[str] = []
            figures = time_engine(ct2, texts, None, None, keep=summaries)
            figures["dtype"] = ct2.describe()["dtype"]
            figures["identical_to_transformers"] = harness.same_share(summaries, reference)
            base = runs[f"beams{beams}/transformers"]["dialogues_per_second"]
            figures["speedup"] = round(figures["dialogues_per_second"] / base, 2)
            runs[f"beams{beams}/ctranslate2 {quantization}"] = figures
            del ct2
        print(f"[gpu_check] backends beams={beams}: {json.dumps(runs, default=str)[-600:]}", file=sys.stderr)
    return runs


def time_engine(
    backend: Any, texts: list[str], batch_tokens: int | None, max_batch_size: int | None, keep: list | None = None
) -> dict[str, Any]:
    """The Engine's figures over ``texts``; ``keep`` gets the summaries in input order when given."""
    import torch

    tokens = batch_tokens or default_of("batch_tokens")
    rows = max_batch_size or default_of("max_batch_size")
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    synchronize()
    started = time.perf_counter()
    stats, generated_tokens, outputs, errors = run_engine(backend, texts, tokens, rows)
    synchronize()
    seconds = time.perf_counter() - started
    if keep is not None:
        keep.extend(o["summary"] for o in outputs)
    return {
        "batch_tokens": tokens,
        "max_batch_size": rows,
        "seconds": round(seconds, 2),
        "dialogues_per_second": round(len(outputs) / seconds, 2),
        "generated_tokens_per_second": round(generated_tokens / seconds, 1),
        "padding_efficiency": round(stats.real_tokens / max(stats.padded_tokens, 1), 4),
        "wall_over_generate": round(seconds / max(stats.generate_seconds, 1e-9), 3),
        "batches": stats.batches,
        "oom_splits": stats.oom_splits,
        "errors": len(errors),
        "peak_memory_gb": peak_gb(),
    }


def time_fixed(backend: Any, texts: list[str]) -> dict[str, Any]:
    """Idiomatic fixed batches of 8 in arrival order, padded to the longest, on the same model."""
    synchronize()
    started = time.perf_counter()
    _, generated = harness.fixed_batches(backend.model, backend.tokenizer, backend.generation, texts)
    synchronize()
    seconds = time.perf_counter() - started
    return {
        "records": len(texts),
        "seconds": round(seconds, 2),
        "dialogues_per_second": round(len(texts) / seconds, 2),
        "generated_tokens_per_second": round(generated / seconds, 1),
    }


CHECKS: dict[str, Callable[[Check], dict[str, Any]]] = {
    "allocator": check_allocator,
    "train": check_training,
    "oom": check_oom_split,
    "throughput": check_throughput,
    "backends": check_backends,
}


def output_path() -> Path:
    out = os.environ.get("OUT")
    return (Path(out) if out else RESULTS_DIR) / "gpu_check.json"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"Comma list of {', '.join(SECTIONS)}")
    parser.add_argument("--cpu-smoke", action="store_true", help="Rehearse every section on the CPU, tiny sizes")
    args = parser.parse_args(argv)
    import torch

    if not torch.cuda.is_available() and not args.cpu_smoke:
        raise SystemExit("gpu_check: torch sees no CUDA device (use --cpu-smoke to rehearse on the CPU)")
    check = Check(output_path(), "cpu" if args.cpu_smoke else "cuda", args.cpu_smoke)
    check.figures["environment"] = environment()
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        check.figures["gpu"] = {
            "name": props.name,
            "memory_gb": round(props.total_memory / 2**30, 1),
            "capability": list(torch.cuda.get_device_capability(0)),
            "bf16": torch.cuda.is_bf16_supported(),
            "cuda": torch.version.cuda,
        }
    for name in args.only.split(","):
        check.run(name, CHECKS[name])
    failed = [n for n, s in check.figures["sections"].items() if s.get("ok") is False]
    print(f"[gpu_check] wrote {check.output}; failed: {', '.join(failed) or 'none'}", file=sys.stderr)
    return check.figures


if __name__ == "__main__":
    main()
