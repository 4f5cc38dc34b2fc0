"""Install dialogsum-batch: `pip install -e .[test]` for development, `.[ray]` for Ray Data (dialogsum_batch.ray)."""

from pathlib import Path

from setuptools import find_packages, setup

# CTranslate2 serves the default command on CPUs (docs/fast-default.md). Its wheels (checked on PyPI for 4.8.5):
# Linux x86_64 and aarch64 (glibc 2.27+; older glibc resolves to 4.6.2's manylinux2014 wheels), macOS arm64 and
# Windows AMD64 for CPython 3.10-3.14; macOS x86_64 only up to 4.6.0 (CPython 3.10-3.13). Elsewhere it is left
# out: the install still works and `--backend auto` serves with transformers, saying why in one line.
CT2_WHEELS = (
    '(platform_machine == "x86_64" and (sys_platform != "darwin" or python_version < "3.14"))'
    ' or platform_machine == "AMD64" or platform_machine == "aarch64" or platform_machine == "arm64"'
)

version = {}
exec(Path("dialogsum_batch/version.py").read_text(encoding="utf-8"), version)

setup(
    name="dialogsum-batch",
    version=version["__version__"],
    description="Fine-tune Pegasus on SAMSum, score it with ROUGE, export it, and summarize chat dialogues in bulk.",
    long_description=Path("README.md").read_text(encoding="utf-8") if Path("README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["dialogsum_batch", "dialogsum_batch.*"]),
    # The project's dialogues: the smoke preset trains on them from any install, not only a checkout.
    package_data={"dialogsum_batch.fixtures": ["data/*.jsonl", "data/*.txt", "data/README.md"]},
    # Exactly what the package imports (plus protobuf, which transformers needs to read the
    # spiece.model of transformers-4-era checkpoints). Ranges for users; CI installs the exact
    # versions in constraints.txt. Not here on purpose (docs/design.md, "Dependencies"): evaluate (its
    # ROUGE fetches a script from the Hub; rouge_score is what it wraps) and jsonlines (the
    # readers need raw bytes per line for FILE:LINE errors and line-size limits).
    install_requires=[
        "torch>=2.2",  # CI and these machines install torch==2.13.0 (CPU build) first
        "transformers>=5.0,<6",
        "huggingface_hub>=1.0",  # snapshots, cache lookups, the safetensors pull request
        "datasets>=4.0",
        "pyarrow>=15",  # Parquet corpora, read directly
        "accelerate>=1.0",
        "sentencepiece>=0.2",
        "tokenizers>=0.20",  # tokenizer.json read directly when CTranslate2 serves: no transformers import
        f"ctranslate2>=4.5; {CT2_WHEELS}",  # the default CPU backend
        "safetensors>=0.4",  # legacy-layout fixtures read and write weights directly
        "protobuf>=4",  # spiece.model -> fast tokenizer for legacy Pegasus checkpoints
        "rouge_score>=0.1.2",
        "py7zr>=0.20",
        "click>=8.1",
        "invoke>=2.2",
        "tqdm>=4.66",
        "numpy>=1.24",
        "matplotlib>=3.7",  # loss / ROUGE plots in run and evaluation folders
        "pyyaml>=6.0",  # --config FILE for invoke finetune, model card front matter
    ],
    extras_require={
        # ruff and import-linter: `invoke test` lints (style, format, the layers) before the suite runs.
        # ray: tests/test_ray.py runs a real local Ray (marked slow).
        "test": [
            "pytest>=8",
            "hypothesis>=6",
            "ctranslate2>=4.5",
            "ruff>=0.6",
            "import-linter>=2.1",
            "ray[data]>=2.50",
        ],
        "ct2": [],  # ctranslate2 is a dependency now; kept so that `pip install dialogsum-batch[ct2]` still works
        "ray": ["ray[data]>=2.50"],  # dialogsum_batch.ray: SummarizeBatch for map_batches, `dialogsum-batch ray`
        "nltk": ["nltk>=3.8"],
    },
    entry_points={
        "console_scripts": ["dialogsum-batch=dialogsum_batch.cli:run"],
        # Input formats, declared the way a plugin declares its own (dialogsum_batch/formats/__init__.py).
        "dialogsum_batch.formats": [
            "jsonl = dialogsum_batch.formats.plain:JSONL",
            "text = dialogsum_batch.formats.plain:TEXT",
            "csv = dialogsum_batch.formats.tabular:CSV",
            "tsv = dialogsum_batch.formats.tabular:TSV",
            "json = dialogsum_batch.formats.tabular:JSON",
            "whatsapp = dialogsum_batch.formats.whatsapp:WHATSAPP",
            "slack = dialogsum_batch.formats.slack:SLACK",
            "telegram = dialogsum_batch.formats.telegram:TELEGRAM",
            "discord = dialogsum_batch.formats.discord:DISCORD",
            "srt = dialogsum_batch.formats.subtitles:SRT",
            "vtt = dialogsum_batch.formats.subtitles:VTT",
        ],
    },
)
