"""Shared helpers for the benchmark scripts: models, inputs, memory probes and result files.

Every benchmark model is a random-weight Pegasus with the project's locally trained vocabulary,
padded with unused pieces up to the vocabulary size the spec asks for, so that the output layer
costs what a real model's would and CTranslate2 can convert the folder. Weights are random:
the summaries are nonsense, the compute is real.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as `python bench/x.py` from a clean clone, before `pip install -e .`
    sys.path.insert(0, str(REPO))

RESULTS_DIR = REPO / "bench" / "results"
WORK_DIR = Path(tempfile.gettempdir()) / "dialogsum-bench"  # built models, kept between runs (outside the repo)
SHARED_DIALOGSUM = REPO.parent / "shared" / "data" / "dialogsum" / "dialogsum.dev.jsonl"


@dataclass(frozen=True)
class ModelSpec:
    """Sizes of a benchmark Pegasus."""

    name: str
    d_model: int
    layers: int  # encoder layers, and as many decoder layers
    heads: int
    ffn_dim: int
    vocab_size: int  # the trained vocabulary is padded with unused pieces up to this size


MODELS: dict[str, ModelSpec] = {
    "tiny": ModelSpec("tiny", 64, 2, 4, 128, 2000),  # dialogsum_batch.fixtures.tiny's defaults: overhead-dominated
    "mid": ModelSpec("mid", 512, 6, 8, 2048, 8192),  # compute dominates, still fast on two cores
    "large": ModelSpec("large", 1024, 16, 16, 4096, 96103),  # pegasus-large dimensions, ~570M parameters
}


# ---------------------------------------------------------------------------- models


def padded_vocab(size: int) -> list[tuple[str, float]]:
    """Pegasus' special tokens and the project's SentencePiece pieces, padded with unused pieces to ``size``."""
    from dialogsum_batch.fixtures.tiny import default_texts, pegasus_vocab, train_sentencepiece, training_sentences

    processor = train_sentencepiece(training_sentences(default_texts()), min(size, 8000))
    vocab = pegasus_vocab(processor)[:size]
    filler = [(f"<unused_{i}>", -1e4) for i in range(size - len(vocab))]  # never chosen for real text
    return vocab + filler


def build_model(spec: ModelSpec, output_dir: Path, seed: int = 0) -> Path:
    """Write a random Pegasus of ``spec``'s sizes with a tokenizer of exactly ``spec.vocab_size`` pieces."""
    from transformers import PegasusTokenizer

    from dialogsum_batch.fixtures.tiny import TinySpec, random_model, tiny_config
    from dialogsum_batch.logs import library_bars

    tokenizer = PegasusTokenizer(vocab=padded_vocab(spec.vocab_size), offset=0, model_max_length=1024)
    sizes = TinySpec(len(tokenizer), spec.d_model, spec.layers, spec.heads, spec.ffn_dim, 1024)
    model = random_model(tiny_config(sizes, len(tokenizer)), seed)
    output_dir.mkdir(parents=True, exist_ok=True)
    with library_bars(show=False):
        model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    (output_dir / "bench_spec.json").write_text(json.dumps({**asdict(spec), "seed": seed}) + "\n")
    return output_dir


def model_dir(name: str, work_dir: Path = WORK_DIR, seed: int = 0) -> Path:
    """The benchmark model ``name`` (tiny, mid, large), built on first use and kept in ``work_dir``."""
    spec = MODELS[name]
    folder = Path(work_dir) / f"perf-{name}"
    marker = folder / "bench_spec.json"
    if marker.is_file() and json.loads(marker.read_text()) == {**asdict(spec), "seed": seed}:
        return folder
    if name == "tiny":  # exactly the model the tests and demos use
        from dialogsum_batch.fixtures.tiny import build_tiny_model

        build_tiny_model(folder, seed=seed)
        marker.write_text(json.dumps({**asdict(spec), "seed": seed}) + "\n")
        return folder
    return build_model(spec, folder, seed)


# ---------------------------------------------------------------------------- inputs


def dialogues(n: int, source: str = "synthetic", seed: int = 0) -> list[dict[str, str]]:
    """``n`` records ({id, dialogue, summary}): synthetic, or DialogSum dev rows repeated to ``n``."""
    if source == "synthetic":
        from dialogsum_batch.fixtures.synthetic import generate

        return list(generate(n, seed=seed))
    path = SHARED_DIALOGSUM if source == "dialogsum" else Path(source)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    picked = [rows[i % len(rows)] for i in range(n)]
    return [
        {"id": f"{source}-{i}", "dialogue": r["dialogue"], "summary": r.get("summary", "")}
        for i, r in enumerate(picked)
    ]


def available_sources() -> list[str]:
    """synthetic always; dialogsum when ../shared/data/dialogsum is present (never required)."""
    return ["synthetic"] + (["dialogsum"] if SHARED_DIALOGSUM.is_file() else [])


# ---------------------------------------------------------------------------- measurement


def child_env(**overrides: str | None) -> dict[str, str]:
    """The environment of a measured ``python -m dialogsum_batch``: offline, the repository importable before
    ``pip install -e .``, and ``overrides`` (a None value removes the variable)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM) in MiB since start or the last ``reset_peak_rss``."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def reset_peak_rss() -> bool:
    """Start a new peak measurement (Linux: writing 5 to clear_refs resets VmHWM); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def environment(threads: int | None = None) -> dict[str, Any]:
    """Library versions, cores and load average, recorded beside every figure."""
    import torch
    import transformers

    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpu_cores": os.cpu_count(),
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "load_average": load_average(),
        "machine": platform.machine(),
    }


# ---------------------------------------------------------------------------- results


def write_results(name: str, payload: dict[str, Any], markdown: str, output_dir: Path = RESULTS_DIR) -> Path:
    """``<name>.json`` and ``<name>.md`` in ``output_dir``; returns the JSON path."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    (output_dir / f"{name}.md").write_text(markdown.rstrip() + "\n", encoding="utf-8")
    return path


def publish(name: str, report: dict[str, Any], table: str, output_dir: Path = RESULTS_DIR) -> dict[str, Any]:
    """Write a benchmark's JSON and Markdown results, print the table, and give the report back."""
    write_results(name, report, table, output_dir)
    print(table)
    return report


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub Markdown table; floats printed with a sensible number of digits."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 10 else f"{value:,.1f}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
