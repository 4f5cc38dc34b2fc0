"""What the benchmark scripts measure with: models, inputs, the machine header and result files.

How a benchmark runs (arguments, rounds, processes, engines) is ``harness.py``.

Every benchmark model is a random-weight Pegasus with a locally trained vocabulary, padded with unused
pieces up to the vocabulary size the spec asks for, so that the output layer costs what a real model's
would and CTranslate2 can convert the folder. Weights are random: the summaries are nonsense, the
compute is real.

Lengths are real too: a vocabulary trained on the project's small texts alone splits everyday words
("He ll o", "P ers on"), and DialogSum chats came out at 304 tokens where a real tokenizer gives ~206
(GPT-2 BPE, BART's; ``source_lengths.py``). When ``../shared`` holds DialogSum, the vocabulary also
learns from its rows from ``VOCAB_ROWS`` on, which the benchmarks never measure (they cycle the rows
before it): 220 tokens on the 160 rows ``bench_default.py`` measures.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as `python bench/x.py` from a clean clone, before `pip install -e .`
    sys.path.insert(0, str(REPO))

from dialogsum_batch.backends.common import usable_cores  # noqa: E402,F401 (re-exported to the scripts)

RESULTS_DIR = REPO / "bench" / "results"
WORK_DIR = Path(tempfile.gettempdir()) / "dialogsum-bench"  # built models, kept between runs (outside the repo)
SHARED_DIALOGSUM = REPO.parent / "shared" / "data" / "dialogsum" / "dialogsum.dev.jsonl"
VOCAB_ROWS = 250  # DialogSum rows from here on teach the vocabulary; the benchmarks measure the rows before


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


def vocabulary_corpus() -> tuple[str, list[str]]:
    """The texts a benchmark vocabulary learns from, and their name (kept in the model's marker)."""
    from dialogsum_batch.fixtures.tiny import default_texts

    texts = list(default_texts())
    if not SHARED_DIALOGSUM.is_file():
        return "project", texts
    held_out = read_records(SHARED_DIALOGSUM)[VOCAB_ROWS:]
    return "project+dialogsum-heldout", texts + [r[key] for r in held_out for key in ("dialogue", "summary")]


def padded_vocab(size: int) -> list[tuple[str, float]]:
    """Pegasus' special tokens and SentencePiece pieces learnt from ``vocabulary_corpus``, padded with unused
    pieces to ``size``."""
    from dialogsum_batch.fixtures.tiny import pegasus_vocab, train_sentencepiece, training_sentences

    processor = train_sentencepiece(training_sentences(vocabulary_corpus()[1]), min(size, 8000))
    vocab = pegasus_vocab(processor)[:size]
    filler = [(f"<unused_{i}>", -1e4) for i in range(size - len(vocab))]  # never chosen for real text
    return vocab + filler


def random_pegasus(spec: ModelSpec, seed: int = 0, device: str = "cpu") -> tuple[Any, Any]:
    """A random Pegasus of ``spec``'s sizes built on ``device`` (no files), and its tokenizer of exactly
    ``spec.vocab_size`` pieces."""
    import torch
    from transformers import PegasusTokenizer

    from dialogsum_batch.fixtures.tiny import TinySpec, random_model, tiny_config

    tokenizer = PegasusTokenizer(vocab=padded_vocab(spec.vocab_size), offset=0, model_max_length=1024)
    sizes = TinySpec(len(tokenizer), spec.d_model, spec.layers, spec.heads, spec.ffn_dim, 1024)
    with torch.device(device):
        model = random_model(tiny_config(sizes, len(tokenizer)), seed)
    return model, tokenizer


def build_model(spec: ModelSpec, output_dir: Path, seed: int = 0) -> Path:
    """Write a random Pegasus of ``spec``'s sizes with a tokenizer of exactly ``spec.vocab_size`` pieces."""
    from dialogsum_batch.logs import library_bars

    model, tokenizer = random_pegasus(spec, seed)
    output_dir.mkdir(parents=True, exist_ok=True)
    with library_bars(show=False):
        model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    (output_dir / "bench_spec.json").write_text(json.dumps(marker_of(spec, seed)) + "\n")
    return output_dir


def marker_of(spec: ModelSpec, seed: int) -> dict[str, Any]:
    """What a built benchmark model is: its sizes, seed and vocabulary corpus (a change rebuilds it)."""
    corpus = "project" if spec.name == "tiny" else vocabulary_corpus()[0]
    return {**asdict(spec), "seed": seed, "vocabulary": corpus}


def model_dir(name: str, work_dir: Path = WORK_DIR, seed: int = 0) -> Path:
    """The benchmark model ``name`` (tiny, mid, large), built on first use and kept in ``work_dir``."""
    spec = MODELS[name]
    folder = Path(work_dir) / f"perf-{name}"
    marker = folder / "bench_spec.json"
    if marker.is_file() and json.loads(marker.read_text()) == marker_of(spec, seed):
        return folder
    if name == "tiny":  # exactly the model the tests and demos use
        from dialogsum_batch.fixtures.tiny import build_tiny_model

        build_tiny_model(folder, seed=seed)
        marker.write_text(json.dumps(marker_of(spec, seed)) + "\n")
        return folder
    return build_model(spec, folder, seed)


def ct2_export(model: Path, quantization: str) -> Path:
    """The CTranslate2 export of ``model`` with ``quantization`` weights, made once beside it."""
    from dialogsum_batch.export import ExportSettings, export_model

    folder = model.parent / f"{model.name}-ct2-{quantization}"
    built = folder / "model.bin"
    if not built.is_file() or built.stat().st_mtime < (model / "model.safetensors").stat().st_mtime:
        export_model(ExportSettings(str(model), str(folder), "ctranslate2", quantization, force=True))
    return folder


# ---------------------------------------------------------------------------- inputs


def dialogues(n: int, source: str = "synthetic", seed: int = 0) -> list[dict[str, str]]:
    """``n`` records ({id, dialogue, summary}): synthetic, or the rows of a file repeated to ``n`` (DialogSum's
    rows before ``VOCAB_ROWS``: those the vocabulary never saw)."""
    if source == "synthetic":
        from dialogsum_batch.fixtures.synthetic import generate

        return list(generate(n, seed=seed))
    rows = read_records(SHARED_DIALOGSUM)[:VOCAB_ROWS] if source == "dialogsum" else read_records(Path(source))
    picked = [rows[i % len(rows)] for i in range(n)]
    return [
        {"id": f"{source}-{i}", "dialogue": r["dialogue"], "summary": r.get("summary", "")}
        for i, r in enumerate(picked)
    ]


def available_sources() -> list[str]:
    """synthetic always; dialogsum when ../shared/data/dialogsum is present (never required)."""
    return ["synthetic"] + (["dialogsum"] if SHARED_DIALOGSUM.is_file() else [])


def read_records(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON Lines file (records, or the summaries a measured run wrote); blank lines skipped."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_records(path: Path, rows: Iterable[dict[str, str]], reference: bool = True) -> Path:
    """``rows`` as a JSON Lines file; without ``reference`` only id and dialogue (no ROUGE in timed runs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            kept = row if reference else {"id": row["id"], "dialogue": row["dialogue"]}
            out.write(json.dumps(kept, ensure_ascii=False) + "\n")
    return path


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


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version(package: str) -> str | None:
    """An installed package's version, read from its metadata: importing torch here would count in the peak
    memory of every process this one starts afterwards."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(package)
    except PackageNotFoundError:
        return None


def environment(threads: int | list[int] | None = None) -> dict[str, Any]:
    """The machine header recorded beside every figure: CPU, cores, threads, versions and the load average
    before the runs (``publish`` adds the load average after)."""
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu": cpu_name(),
        "machine": platform.machine(),
        "cpu_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "threads": threads,
        "python": platform.python_version(),
        **{name: version(name) for name in ("torch", "transformers", "ctranslate2")},
        "load_average": load_average(),
    }


def machine_line(env: dict[str, Any]) -> str:
    """The environment as the one line every results table starts with."""
    threads = "automatic" if not env.get("threads") else env["threads"]
    after = f", {env['load_after']} after" if env.get("load_after") is not None else ""
    versions = ", ".join(f"{name} {env[name]}" for name in ("torch", "transformers", "ctranslate2") if env.get(name))
    return (
        f"{env.get('cpu') or env.get('machine')}, {env.get('usable_cores', env.get('cpu_cores'))} usable cores, "
        f"threads {threads}; load average {env.get('load_average')} before{after}; "
        f"python {env.get('python')}, {versions}."
    )


# ---------------------------------------------------------------------------- results


def write_results(name: str, payload: dict[str, Any], markdown: str, output_dir: Path = RESULTS_DIR) -> Path:
    """``<name>.json`` and ``<name>.md`` in ``output_dir``; returns the JSON path."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    (output_dir / f"{name}.md").write_text(markdown.rstrip() + "\n", encoding="utf-8")
    return path


def publish(name: str, report: dict[str, Any], body: str, output_dir: Path = RESULTS_DIR) -> dict[str, Any]:
    """Write a benchmark's JSON and Markdown results, print the Markdown, and give the report back.

    The Markdown is the machine header (``report["environment"]``, stamped with the load average now),
    ``body``, and the command that reproduces it (``report["command"]``) where the report has them.
    """
    parts = [body.strip()]
    env = report.get("environment")
    if env is not None:
        env["load_after"] = load_average()
        parts.insert(0, machine_line(env))
    if report.get("command"):
        parts.append(f"Reproduce: `{report['command']}`")
    markdown = "\n\n".join(parts) + "\n"
    write_results(name, report, markdown, output_dir)
    print(markdown)
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
