"""dialogsum-batch: summarize chat dialogues in bulk with a fine-tuned Pegasus.

The Python API is ``Summarizer`` (``from dialogsum_batch import Summarizer``); it is imported on first use,
so ``import dialogsum_batch`` stays light for the command's ``--help`` and for tools.
"""

from typing import Any

from .version import __version__

__all__ = ["Summarizer", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "Summarizer":
        from .inference.summarizer import Summarizer

        return Summarizer
    raise AttributeError(f"module 'dialogsum_batch' has no attribute {name!r}")
