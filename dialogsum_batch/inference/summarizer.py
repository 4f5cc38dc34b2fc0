"""The Python API: load a model once, then summarize any iterable of dialogues, streamed, in input order.

    from dialogsum_batch import Summarizer

    summarizer = Summarizer("runs/pegasus-samsum", num_beams=4)
    summarizer("Anna: lunch?\\nBen: sure, 12:30")            # one summary, a string
    for row in summarizer.summarize(open_chats()):         # strings or dicts, any number
        print(row["id"], row["summary"])

Every surface builds its engine here: the command (one process or many), ``evaluate``, the Ray entry
point and this API, so each gets the same backend choice, batching and long-chat handling.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from ..backends import Backend, load_backend
from ..config import DEFAULT_MODEL, RunSettings, run_settings
from ..errors import ConfigError, InputError
from ..logs import Say
from ..text import normalise
from .engine import Engine, Outcome
from .outputs import error_record, summary_row
from .records import BadRecord, Item, Parsed, Record, to_record

API_SOURCE = "<input>"  # where a record handed to ``summarize`` came from, in error messages
ON_ERROR = ("fail", "skip", "row")  # row: the API's own, a bad record becomes an error row in the output

Dialogue = str | Mapping[str, Any]


class Summarizer:
    """A model loaded once, with the command's batching, decoding and error handling.

    ``Summarizer(model, backend="auto", **options)`` takes the command's options as keyword arguments
    (``num_beams=4``, ``max_new_tokens=64``, ``long="chunk"``, ``text_field="text"``, ``on_error="skip"``,
    ``device="cuda"``...; ``dialogsum_batch.config.OPTION_FIELDS`` lists them, each defaulting as the
    command does). ``on_error``: ``fail`` raises ``InputError`` at a bad record (after yielding those
    before it), ``skip`` leaves it out (``log`` hears of it), ``row`` yields an error row in its place.
    """

    def __init__(self, model: str = DEFAULT_MODEL, backend: str = "auto", *, log: Say | None = None, **options: Any):
        self._start(run_settings(model=model, backend=backend, **options), None, log)

    @classmethod
    def from_settings(cls, settings: RunSettings, backend: Backend | None = None, log: Say | None = None) -> Summarizer:
        """From settings built already (the command, ``evaluate``); ``backend`` skips loading (tools, tests)."""
        made = cls.__new__(cls)
        made._start(settings, backend, log)
        return made

    def _start(self, settings: RunSettings, backend: Backend | None, log: Say | None) -> None:
        check_on_error(settings.on_error)
        self.settings = settings
        self.log: Say = log or (lambda _: None)
        self.backend: Backend = backend or load_backend(settings.model, settings.decode, log=self.log)

    def describe(self) -> dict[str, object]:
        """What serves the model: backend, device, weight type and decoding settings."""
        return {"backend": self.backend.name, "device": self.backend.device, **self.backend.describe()}

    def engine(self, should_stop: Callable[[], bool] = lambda: False, log: Say | None = None) -> Engine:
        """A batch engine over this model with these settings; ``should_stop`` is asked between batches."""
        return Engine(
            self.backend,
            self.settings.batch,
            long=self.settings.long,
            close_on_bad=self.settings.on_error == "fail",
            should_stop=should_stop,
            log=log or self.log,
        )

    def summarize(self, dialogues: Iterable[Dialogue]) -> Iterator[dict[str, Any]]:
        """One row per dialogue, in input order, as the command writes them (``id``, ``summary``, and
        ``reference`` / ``rouge`` / ``truncated`` / ``chunks`` / kept fields where they apply).

        ``dialogues`` may be strings (turns as ``Name: text`` lines) or mappings with the dialogue in
        ``text_field`` (and ``id_field``, ``reference_field``); it is read a window at a time, so a
        generator of any length streams through in bounded memory. A string or mapping without an id
        gets its position (``"0"``, ``"1"``...).
        """
        items = (as_item(index, value, self.settings) for index, value in enumerate(dialogues))
        for outcome in self.engine().run(items):
            row = self._row(outcome)
            if row is not None:
                yield row

    def __call__(self, dialogue: str) -> str:
        """The summary of one dialogue; an empty one raises ``InputError``."""
        item = as_item(0, dialogue, self.settings)
        outcome = next(self.engine().run([item]))
        if outcome.error is not None:
            raise outcome.error
        return outcome.summary or ""

    def _row(self, outcome: Outcome) -> dict[str, Any] | None:
        if outcome.error is None:
            return summary_row(outcome.item, outcome, self.settings.keep_fields)  # type: ignore[arg-type]
        if self.settings.on_error == "fail":
            raise outcome.error
        if self.settings.on_error == "row":
            return error_row(outcome.error)
        self.log(f"skipped {outcome.error}")
        return None


def as_item(index: int, value: Any, settings: RunSettings) -> Item:
    """A string or a mapping as a record (its position as id when it has none), or a bad record saying why."""
    line = index + 1
    if isinstance(value, str):
        dialogue = normalise(value)
        if dialogue:
            return Record(index, str(index), dialogue, source=API_SOURCE, line=line)
        return BadRecord(index, InputError(API_SOURCE, line, "dialogue is empty", value[:500]))
    if isinstance(value, Mapping):
        return to_record(Parsed(line, fields=value), index, API_SOURCE, settings.fields, stdin=True)
    return BadRecord(index, InputError(API_SOURCE, line, f"expected a string or a mapping, got {type(value).__name__}"))


def error_row(error: InputError) -> dict[str, Any]:
    """A bad record in the output stream (``on_error="row"``): the errors file's fields and ``error``."""
    return {"error": str(error), **error_record(error)}


def check_on_error(policy: str) -> None:
    if policy not in ON_ERROR:
        raise ConfigError(f"on_error must be one of {', '.join(ON_ERROR)}, got {policy!r}")
