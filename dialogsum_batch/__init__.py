"""dialogsum-batch: summarize chat dialogues in bulk with a fine-tuned Pegasus."""

__version__ = "0.1.0"
