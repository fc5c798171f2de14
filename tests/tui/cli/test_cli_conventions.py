"""The command's conventions: --version, shell completion, help panels."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT, cli
from tui.cli import completion


def test_version_names_the_package_torch_and_the_device(tmp_path):
    result = cli("--version", checkpoints=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"cifar-tui {importlib.metadata.version('cifar-tui')}"
    assert lines[1].startswith("torch 2.") and "CUDA" in lines[1] and "torchvision 0." in lines[1]
    assert lines[2].startswith("device: cpu") or lines[2].startswith("device: cuda")
    assert not any(tmp_path.iterdir())  # nothing written


def test_completers_offer_presets_sweeps_runs_and_set_keys(tmp_path, monkeypatch):
    run = tmp_path / "20260101-120000-quickstart-ab12"
    run.mkdir()
    (run / "run.json").write_text('{"run_id": "x", "preset": "quickstart", "created_ns": 1}')
    monkeypatch.setenv("CIFAR_TUI_CHECKPOINTS", str(tmp_path))
    assert "resnet18" in completion.presets("res") and "quickstart" not in completion.presets("r")
    assert completion.sweeps("") == ["tiny", "writeup"]
    assert completion.runs("") == ["last", run.name]
    assert "optim.lr=" in completion.set_keys("optim.") and "model.name=" in completion.set_keys("")
    assert completion.set_keys("model.name=wrn4") == ["model.name=wrn40_10"]
    assert "sam.name=asam" in completion.set_keys("sam.name=")
    assert completion.set_keys("optim.lr=0.") == []  # no names to offer for a number


def test_bash_completion_is_wired_to_the_options():
    env = {
        **os.environ,
        "_CIFAR_TUI_COMPLETE": "complete_bash",
        "COMP_WORDS": "cifar-tui --run quickstart --set model.name=resnet1",
        "COMP_CWORD": "4",
    }
    out = subprocess.run(
        [str(Path(sys.executable).parent / "cifar-tui")],  # the completion variable is by name
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.split() == [
        "model.name=resnet101",
        "model.name=resnet152",
        "model.name=resnet18",
    ]


def test_run_only_options_have_their_own_help_panel(tmp_path):
    result = cli("--help", checkpoints=tmp_path)
    assert result.returncode == 0
    text = result.stdout
    panel = text.index("Run options (with --run PRESET or --resume RUN)")
    for option in ("--set", "--json", "--force", "--gpus", "--max-restarts"):
        assert text.index(option) > panel, option
    assert text.index("--run ") < panel and "--install-completion" in text


def test_the_readme_exit_code_table_is_engine_exit_codes():
    import re

    from engine import exit_codes

    readme = (ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^  \| (\d+) \| (.+?) \|$", readme, flags=re.M))
    assert {int(c) for c in rows} == set(exit_codes.TABLE)
    for code, meaning in exit_codes.TABLE.items():
        words = meaning.split(" (")[0]
        assert rows[str(code)].startswith(words), (code, rows[str(code)], meaning)


def test_options_backed_by_environment_variables_say_so_and_the_variable_alone_is_no_option(
    tmp_path, monkeypatch
):
    text = cli("--help", checkpoints=tmp_path).stdout
    assert "[env var: CIFAR_TUI_DATA]" in text and "[env var: CIFAR_TUI_CHECKPOINTS]" in text
    monkeypatch.setenv("CIFAR_TUI_DATA", str(tmp_path))
    bare = cli(checkpoints=tmp_path)
    assert bare.returncode == 2 and "no terminal" in bare.stderr  # not "--data-dir needs --run"
    given = cli("--data-dir", str(tmp_path), checkpoints=tmp_path)
    assert given.returncode == 2 and "need --run PRESET" in given.stderr
