"""The first run's header and its "what next" lines: the sizing it got, the SYNTHETIC banner,
and at the end three ways further plus where its files are. Shared by the headless printer and
the dashboard (plain strings; each renders them its own way)."""

from __future__ import annotations

from pathlib import Path

from engine.datafiles import synthetic_banner
from engine.events import RunStarted

WRITEUP_PRESET = "resnet18"


def sizing_of(started: RunStarted | None) -> str:
    """The label `sizing: auto` left in the run's config ("" for a run not sized so)."""
    if started is None:
        return ""
    sizing = started.config.get("sizing") if isinstance(started.config, dict) else None
    return sizing if isinstance(sizing, str) and sizing != "auto" else ""


def is_first_run(started: RunStarted | None) -> bool:
    return bool(sizing_of(started))


def header_lines(started: RunStarted | None) -> list[str]:
    """'cpu: 10,000-image subset, wrn16_2, 3 epochs', then the banner when it is synthetic."""
    sizing = sizing_of(started)
    if not sizing or started is None:
        return []
    lines = [sizing]
    if started.synthetic:
        data = started.config.get("data") if isinstance(started.config, dict) else None
        data_dir = data.get("data_dir") if isinstance(data, dict) else None
        lines.append(synthetic_banner(data_dir))
    return lines


def what_next_lines(run_id: str, run_dir: Path, *, dashboard: bool) -> list[str]:
    """Three commands or keys that take a user further, then where the run's files are."""
    if dashboard:
        return [
            "what next:",
            f"  cifar-tui --run {WRITEUP_PRESET}: the write-up's ResNet-18 (a GPU)",
            "  cifar-tui runs compare A B: two runs side by side",
            "  enter on the most-confused pair (here, Results): its images",
            f"the run's files: {run_dir}",
        ]
    return [
        "what next:",
        f"  cifar-tui --run {WRITEUP_PRESET}    the write-up's ResNet-18 (200 epochs: a GPU)",
        f"  cifar-tui runs compare {run_id} OTHER    two runs side by side (cifar-tui runs)",
        f"  cifar-tui attach {run_id}, r (Results), enter on the most-confused pair: its images",
        f"the run's files: {run_dir} (events.jsonl, config.yaml, eval.npz, card.md, best.pt)",
    ]
