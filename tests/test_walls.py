"""The engine/UI wall: the engine never imports Textual, the UI side never imports torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return set(out.stdout.split())


def _top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_engine_loads_no_textual_or_plotext():
    engine_modules = [p.stem for p in (ROOT / "engine").glob("*.py") if p.stem != "__main__"]
    statement = "; ".join(f"import engine.{m}" for m in engine_modules) + "; import engine.models"
    loaded = _top_level(_loaded_after(statement))
    assert not loaded & {"textual", "plotext", "textual_plotext"}


def test_cli_and_light_engine_modules_load_no_torch():
    statement = (
        "import tui.cli, tui.orchestration.headless, tui.orchestration.launcher, engine.config, "
        "engine.events, engine.runs"
    )
    loaded = _top_level(_loaded_after(statement))
    assert "torch" not in loaded and "torchvision" not in loaded


def test_no_tui_module_imports_torch_in_source():
    for path in (ROOT / "tui").rglob("*.py"):
        text = path.read_text()
        assert "import torch" not in text and "from torch" not in text, path


def test_cli_and_orchestration_load_no_textual():
    """tui.cli and tui.orchestration (and tui.fmt) work without Textual: only the dashboard
    needs it, and the CLI imports tui.app lazily, where it opens the dashboard."""
    modules = ["tui.fmt"] + [
        p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
        for folder in ("cli", "orchestration")
        for p in (ROOT / "tui" / folder).rglob("*.py")
    ]
    loaded = _top_level(_loaded_after("; ".join(f"import {m}" for m in modules)))
    assert "tui.orchestration.sweep.runner" in modules
    assert not loaded & {"textual", "textual_plotext", "torch", "torchvision", "sklearn"}
