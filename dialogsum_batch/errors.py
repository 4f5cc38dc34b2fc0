"""Domain errors: each one prints as a single line a person can act on."""

from __future__ import annotations


class DialogsumError(Exception):
    """Base class for expected failures; the CLI shows them without a traceback."""

    exit_code = 1


class InputError(DialogsumError):
    """A record that cannot be read: carries where it came from and why."""

    def __init__(self, source: str, line: int | None, reason: str, raw: str | None = None):
        self.source = source
        self.line = line
        self.reason = reason
        self.raw = raw
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):  # pickles whole, so ranks can send bad records to the main process
        return InputError, (self.source, self.line, self.reason, self.raw)


class MissingFieldError(InputError):
    """A record without the field an option names (``--text-field``, ``--id-field``): says which it has."""

    SHOWN = 20  # field names listed at most

    def __init__(self, source: str, line: int | None, field: str, option: str, found: tuple[str, ...], raw=None):
        self.field, self.option, self.found = field, option, found
        super().__init__(source, line, f"field '{field}' is missing ({option}); {fields_found(found)}", raw)

    def __reduce__(self):
        return MissingFieldError, (self.source, self.line, self.field, self.option, self.found, self.raw)


def fields_found(found: tuple[str, ...] | list[str]) -> str:
    """``fields found: a, b, c`` for a message, the list cut after ``MissingFieldError.SHOWN`` names."""
    if not found:
        return "no fields found"
    shown = ", ".join(found[: MissingFieldError.SHOWN])
    more = len(found) - MissingFieldError.SHOWN
    return f"fields found: {shown}" + (f" and {more} more" if more > 0 else "")


class DataError(DialogsumError):
    """A corpus or data file that is missing, malformed or of the wrong shape."""


class ModelError(DialogsumError):
    """A model that cannot be found, loaded or used as asked."""


class ConfigError(DialogsumError):
    """A configuration value or file that makes no sense."""


class ShardError(DialogsumError):
    """``--shard`` cannot be worked out (no scheduler array, values that disagree): a usage error."""

    exit_code = 2


class OutputClosed(DialogsumError):
    """The reader of the output went away (``| head -1``): the job stops quietly, as a Unix filter does."""

    exit_code = 141  # 128 + SIGPIPE: what the shell reports for ``yes | head -1``'s ``yes``


class LockedError(DialogsumError):
    """Another run holds the lock on the same output."""

    exit_code = 75


FLOAT16_TYPES = ("float16", "int8_float16")  # weight / compute types whose activations overflow in Pegasus


def float16_refused(name: str = "float16", remedy: str = "use bfloat16, or --force-dtype") -> str:
    """Why float16 (``name``: how the caller spells it) is refused, and what to use instead."""
    return f"{name} makes Pegasus overflow (blank or NaN output); {remedy}"


def refuse_float16(dtype: str, forced: bool = False) -> None:
    """ModelError for a float16 dtype or compute type unless ``forced`` (--force-dtype)."""
    if dtype in FLOAT16_TYPES and not forced:
        raise ModelError(float16_refused(dtype))


def first_line(value: object) -> str:
    """The first line of an exception or message, for one-line errors."""
    text = str(value).strip()
    return text.splitlines()[0] if text else type(value).__name__
