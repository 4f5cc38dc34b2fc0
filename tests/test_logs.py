"""logs.library_bars: library progress bars only where a person watches stderr, settings restored after."""

from __future__ import annotations

import io
import sys

import pytest

from dialogsum_batch.logs import library_bars, stderr_is_terminal


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def states() -> tuple[bool, bool, bool]:
    """Whether transformers', huggingface_hub's and datasets' bars are on."""
    import datasets
    from huggingface_hub import utils as hub
    from transformers.utils import logging as hf_logging

    hub_on = not hub.are_progress_bars_disabled()
    return hf_logging.is_progress_bar_enabled(), hub_on, datasets.is_progress_bar_enabled()


@pytest.fixture
def bars_on():
    """Every library's bars on for the test, and each put back as it was afterwards."""
    import datasets
    from huggingface_hub import utils as hub
    from transformers.utils import logging as hf_logging

    before = states()
    hf_logging.enable_progress_bar()
    datasets.enable_progress_bars()
    yield
    for on, enable, disable in zip(
        before,
        (hf_logging.enable_progress_bar, hub.enable_progress_bars, datasets.enable_progress_bars),
        (hf_logging.disable_progress_bar, hub.disable_progress_bars, datasets.disable_progress_bars),
        strict=True,
    ):
        (enable if on else disable)()


def test_off_a_terminal_every_library_bar_is_hidden_then_restored(bars_on, monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a pipe, a file, cron mail
    assert not stderr_is_terminal()
    with library_bars() as shown:
        assert shown is False and states() == (False, False, False)
    assert states() == (True, True, True)


def test_on_a_terminal_bars_stay_unless_hidden_on_purpose(bars_on, monkeypatch):
    monkeypatch.setattr(sys, "stderr", Terminal())
    with library_bars() as shown:
        assert shown is True and states() == (True, True, True)
    with library_bars(show=False):
        assert states() == (False, False, False)
    assert states() == (True, True, True)


def test_bars_switched_off_before_stay_off(bars_on, monkeypatch):
    from huggingface_hub import utils as hub

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    hub.disable_progress_bars()
    with library_bars(), library_bars():  # nested, as the tiny model's build inside a training run
        assert states() == (False, False, False)
    assert states() == (True, False, True)
