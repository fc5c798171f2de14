"""The walls at runtime (import-linter checks them statically, `make lint`): the engine never
loads the terminal UI libraries, the UI side never loads torch, the CLI and orchestration never
load Textual."""

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


def _modules(package: str) -> list[str]:
    return [
        p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".").removesuffix(".__init__")
        for p in (ROOT / package).rglob("*.py")
        if p.stem != "__main__"
    ]


def test_engine_loads_no_textual_or_plotext():
    loaded = _top_level(_loaded_after("; ".join(f"import {m}" for m in _modules("engine"))))
    assert "engine.catalog.models" in _modules("engine")
    assert not loaded & {"textual", "plotext", "textual_plotext", "rich", "typer"}


def test_every_tui_module_loads_no_torch_torchvision_or_sklearn():
    """The whole UI side (the dashboard included) and the catalogs it reads."""
    modules = _modules("tui")
    assert "tui.app" in modules and "tui.screens.setup" in modules
    loaded = _top_level(_loaded_after("; ".join(f"import {m}" for m in modules)))
    assert not loaded & {"torch", "torchvision", "sklearn"}


def test_no_tui_module_imports_torch_in_source():
    for path in (ROOT / "tui").rglob("*.py"):
        text = path.read_text()
        assert "import torch" not in text and "from torch" not in text, path


def test_cli_and_orchestration_load_no_textual():
    """tui.cli and tui.orchestration (and tui.fmt) work without Textual: only the dashboard
    needs it, and the CLI imports tui.app lazily, where it opens the dashboard."""
    modules = ["tui.fmt", *_modules("tui/cli"), *_modules("tui/orchestration")]
    loaded = _top_level(_loaded_after("; ".join(f"import {m}" for m in modules)))
    assert "tui.orchestration.sweep.runner" in modules
    assert not loaded & {"textual", "textual_plotext", "torch", "torchvision", "sklearn"}


def test_no_process_is_started_with_an_injected_pythonpath():
    """The engine runs as `sys.executable -m engine ...`: installed (a wheel, or `-e`), the
    package is importable from anywhere, so nothing points PYTHONPATH at the checkout."""
    root = Path(__file__).resolve().parents[1]
    offenders = [
        str(p.relative_to(root))
        for folder in ("engine", "tui")
        for p in (root / folder).rglob("*.py")
        if "PYTHONPATH" in p.read_text()
    ]
    assert offenders == []
