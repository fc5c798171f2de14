"""A terminal bell and a desktop notification when a run ends, fails or diverges.

`notify_run_end(app, run_id, status, detail)` rings the bell and writes two desktop-notification
escape sequences: OSC 9 (iTerm2, WezTerm, Windows Terminal, kitty) and OSC 777 (rxvt, foot,
Ghostty, VTE terminals); a terminal that knows neither ignores them. They go through the app's
driver, between frames, so they never cut into the screen. Off with `CIFAR_TUI_NOTIFY=0` (or
`off`, `no`, `false`); a headless app (tests, `run_test`) writes nothing.

The Monitor calls it when its run's final event arrives or its engine dies; the Runs screen may
call it for the runs it follows, with the status it shows.
"""

from __future__ import annotations

import os
import re
from typing import Any

ENV_NOTIFY = "CIFAR_TUI_NOTIFY"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # no escape may end the sequence early


def enabled() -> bool:
    """False when `CIFAR_TUI_NOTIFY` is 0 / off / no / false."""
    return os.environ.get(ENV_NOTIFY, "1").strip().lower() not in ("0", "off", "no", "false")


def _clean(text: str) -> str:
    return _CONTROL.sub(" ", text)


def osc_sequences(title: str, body: str) -> str:
    """OSC 9 (body only) and OSC 777 (title and body; `;` separates its fields, so a title
    keeps none), each ended with BEL."""
    title, body = _clean(title).replace(";", ","), _clean(body)
    return f"\x1b]9;{title}: {body}\x07\x1b]777;notify;{title};{body}\x07"


def run_end_text(run_id: str, status: str, detail: str = "") -> tuple[str, str]:
    """(title, body) of a run's end: ('cifar-tui: run crashed', 'RUN_ID: the engine died')."""
    body = f"{run_id}: {detail}" if detail else run_id
    return f"cifar-tui: run {status}", body


def notify_run_end(app: Any, run_id: str, status: str, detail: str = "") -> bool:
    """Bell + desktop notification for `run_id` ending with `status`; returns whether it was
    written (False: turned off, headless, or no driver)."""
    driver = getattr(app, "_driver", None)
    if not enabled() or driver is None or getattr(app, "is_headless", True):
        return False
    title, body = run_end_text(run_id, status, detail)
    try:
        app.bell()  # Textual's: BEL through the driver
        driver.write(osc_sequences(title, body))
        driver.flush()
    except Exception:  # noqa: BLE001 - a notification never ends the dashboard
        return False
    return True
