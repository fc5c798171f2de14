"""Setup's view of the engine's metadata: plain records, read without Textual or torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tui.screens.setup_fields import (
    COMPONENT_TITLES,
    OPTIONAL_SECTIONS,
    component_defaults,
    component_entry,
    component_fields,
    component_names,
    section_fields,
)

ROOT = Path(__file__).resolve().parents[2]


def test_component_fields_carry_type_default_limits_and_choices() -> None:
    fields = {f.name: f for f in component_fields("optim", "sgd")}
    lr = fields["lr"]
    assert (lr.type, lr.default, lr.limits) == ("float", 0.1, (0.0, None, True))
    assert fields["nesterov"].type == "bool" and fields["nesterov"].limits is None
    assert all(f.has_default for f in fields.values())
    assert component_defaults("optim", "sgd") == {"name": "sgd"} | {
        name: f.default for name, f in fields.items()
    }


def test_entries_names_and_sections() -> None:
    entry = component_entry("optim", "sgd")
    assert entry is not None and entry.doc
    assert component_entry("optim", "no-such-optimizer") is None
    assert component_names("augment") == sorted(component_names("augment"))
    assert "augment" not in COMPONENT_TITLES and COMPONENT_TITLES["optim"] == "optimizer"
    assert {"sam", "mix"} <= OPTIONAL_SECTIONS
    train = {f.name: f for f in section_fields("train")}
    assert train["bf16"].type == "bool | None"
    assert train["device"].pattern is not None and "cuda" in train["device"].doc
    assert {f.name: f.choices for f in section_fields("data")}["dataset"] == (
        "cifar100",
        "synthetic",
    )


def test_setup_fields_loads_neither_textual_nor_torch() -> None:
    code = (
        "import sys, tui.screens.setup_fields; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'textual', 'torch', 'rich'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr
