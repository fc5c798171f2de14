"""The run-end bell and desktop notification (tui.notify): through the driver, off by setting."""

from __future__ import annotations

from typing import Any

import pytest
from textual.app import App

from tui.notify import ENV_NOTIFY, notify_run_end, osc_sequences


class FakeDriver:
    """What Textual's driver offers: write and flush."""

    def __init__(self) -> None:
        self.written: list[str] = []

    def write(self, data: str) -> None:
        self.written.append(data)

    def flush(self) -> None:
        pass


class FakeApp:
    """An app with Textual's own `bell` (it writes BEL through the driver)."""

    bell = App.bell

    def __init__(self, headless: bool = False) -> None:
        self._driver = FakeDriver()
        self.is_headless = headless


def test_a_run_end_rings_and_writes_osc_9_and_777() -> None:
    app: Any = FakeApp()
    assert notify_run_end(app, "r1", "diverged", "loss is nan")
    assert app._driver.written == [
        "\a",
        "\x1b]9;cifar-tui: run diverged: r1: loss is nan\x07"
        "\x1b]777;notify;cifar-tui: run diverged;r1: loss is nan\x07",
    ]


def test_escape_characters_in_a_message_cannot_end_the_sequence_early() -> None:
    text = osc_sequences("a;b\x1b]", "line\nwith\x07bell")
    assert text.count("\x07") == 2 and text.count("\x1b") == 2
    assert "notify;a,b ];line with bell\x07" in text


@pytest.mark.parametrize("value", ["0", "off", "False"])
def test_the_setting_turns_it_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(ENV_NOTIFY, value)
    app: Any = FakeApp()
    assert not notify_run_end(app, "r1", "done")
    assert app._driver.written == []


def test_a_headless_app_writes_nothing() -> None:
    app: Any = FakeApp(headless=True)
    assert not notify_run_end(app, "r1", "done")
    assert app._driver.written == []
