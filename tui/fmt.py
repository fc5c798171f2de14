"""Number formatting shared by the terminal output and the dashboard (no Textual, no torch).

One of each: `pct` for accuracies (fractions shown as percent), `duration` for seconds, and the
input-wait / device-memory texts.
"""

from __future__ import annotations


def pct(
    x: float | None, digits: int = 2, *, width: int = 0, sign: bool = False, unit: str = "%"
) -> str:
    """A fraction as percent: `75.12%`; `-` for None or NaN.

    `width` pads the number (a column of them lines up), `sign` writes `+` for gains (differences
    in percentage points), `unit=""` leaves out the `%` (a table whose header says it)."""
    if x is None or x != x:
        return "-"
    plus = "+" if sign else ""
    return f"{100 * x:{plus}{width}.{digits}f}{unit}"


def duration(seconds: float | None) -> str:
    """`1:02:03` or `2:03`; `-` when unknown."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def memory_text(mib: float | None) -> str:
    """Device memory: '812 MiB', '10.2 GiB'; '-' when not reported (CPU, older logs)."""
    if mib is None:
        return "-"
    return f"{mib / 1024:.1f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"


def wait_text(fraction: float | None) -> str:
    """Share of step time spent waiting for input: '3%', '<1%'; '-' when not reported."""
    if fraction is None:
        return "-"
    pct = 100 * fraction
    return "<1%" if 0 < pct < 0.5 else f"{pct:.0f}%"


def load_text(wait: float | None, mib: float | None) -> str:
    """'input wait 3%  mem 10.2 GiB', the parts that were reported, or ''."""
    parts = []
    if wait is not None:
        parts.append(f"input wait {wait_text(wait)}")
    if mib is not None:
        parts.append(f"mem {memory_text(mib)}")
    return "  ".join(parts)


_CLI_ADVICE = (  # (what a CLI message says, what the dashboard's user does instead)
    ("pass --data-dir / set CIFAR_TUI_DATA", "set the data.data_dir field in Setup"),
    ("--data-dir", "Setup's data.data_dir field"),
    ("--device", "Setup's train.device field"),
    ("--set ", "Setup's field "),
)


def setup_advice(message: str) -> str:
    """An engine message as the dashboard says it: advice about CLI flags (`--data-dir`,
    `--device`, `--set key`) points to the Setup fields that set the same keys."""
    for cli, setup in _CLI_ADVICE:
        message = message.replace(cli, setup)
    return message
