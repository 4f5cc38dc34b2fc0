"""The package version, in a leaf module: setup.py reads it, and every layer may import it."""

__version__ = "0.1.0"
