"""`cifar-tui lr-find PRESET`: the LR range test in an engine process, plotted in the terminal.

Torch-free: the preset is resolved and validated here (as `--run` does), the resolved config goes
to a temporary folder, `python -m engine lr-find CONFIG OUT_JSON` runs the sweep (its progress
lines stream to our stderr), and this side reads the JSON, draws the curve with plotext and prints
the suggestion. `--apply` writes a copy of the resolved preset with `optim.lr` set to it.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import plotext as plt
import yaml

from engine import exit_codes, strict_json
from engine.config import config_to_dict, dump_config, load_config
from engine.errors import BadInputError
from engine.lr_sweep import check_sweep
from tui.orchestration.launcher import resolve_config

EXIT_NO_SUGGESTION = exit_codes.NO_SUGGESTION


def preset_stem(preset: str) -> str:
    return Path(preset).stem if preset.endswith((".yaml", ".yml")) else preset


def default_out(preset: str) -> Path:
    return Path.cwd() / f"lr_find_{preset_stem(preset)}.json"


def default_apply_path(preset: str, lr: float) -> Path:
    return Path.cwd() / f"{preset_stem(preset)}_lr{lr:g}.yaml"


def _check_out(out: Path) -> None:
    if out.is_dir():
        raise BadInputError(f"--out {out} is a folder; give a file name such as {out}/lr.json")
    if not out.parent.is_dir():
        raise BadInputError(f"--out {out}: the folder {out.parent} does not exist")
    try:  # before the sweep, not after it: a probe file, made and removed at once
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=".lr-find-probe-"):
            pass
        if out.exists() and not os.access(out, os.W_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
    except OSError as exc:
        raise BadInputError(f"--out {out}: cannot write there ({exc.strerror or exc})") from None


def _refuse_existing(path: Path) -> None:
    if path.exists():
        raise BadInputError(
            f"{path} already exists; refusing to overwrite it (choose another with --apply-to)"
        )


def run(
    preset: str,
    overrides: list[str],
    *,
    data_dir: str | None = None,
    device: str | None = None,
    start: float,
    end: float,
    steps: int,
    out: Path | None = None,
    apply: bool = False,
    apply_to: Path | None = None,
) -> int:
    """The whole command; raises BadInputError (exit 2) for bad input found on this side."""
    check_sweep(start, end, steps)
    cfg = resolve_config(preset, overrides, data_dir=data_dir, device=device)
    out = Path(out) if out is not None else default_out(preset)
    _check_out(out)
    if apply_to is not None:
        _refuse_existing(apply_to)
    with tempfile.TemporaryDirectory(prefix="cifar-tui-lr-find-") as tmp:
        config_path = Path(tmp) / "config.yaml"
        config_path.write_text(dump_config(cfg))
        code = _run_engine(config_path, out, start, end, steps)
    if code != 0:
        return code  # the engine printed its own error line
    curve = strict_json.loads(out.read_text())
    print(render_plot(curve))
    for note in curve.get("notes", []):
        print(f"note: {note}")
    print(f"stopped: {curve['reason']}")
    print(f"curve written to {out}")
    suggestion = curve.get("suggestion")
    if suggestion is None:
        print(f"no suggested lr: {curve['reason']}; try a lower --start", file=sys.stderr)
        return EXIT_NO_SUGGESTION
    print(f"rule: {curve['rule']}; the preset's optim.lr is {cfg.optim.params['lr']:g}")
    print(f"suggested lr: {suggestion:g}")
    if apply or apply_to is not None:
        path = write_applied(preset, cfg_dict=config_to_dict(cfg), lr=suggestion, path=apply_to)
        print(f"wrote {path}: train with  cifar-tui --run {path}")
    return 0


def _run_engine(config: Path, out: Path, start: float, end: float, steps: int) -> int:
    args = [f"--start={start!r}", f"--end={end!r}", f"--steps={steps}"]
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "lr-find", str(config), str(out), *args],
        stdin=subprocess.DEVNULL,
        stdout=sys.stderr,
    )
    try:
        code = process.wait()
    except KeyboardInterrupt:  # Ctrl-C reached the engine too (same process group)
        process.wait()
        return exit_codes.INTERRUPTED
    return 128 - code if code < 0 else code


def write_applied(preset: str, *, cfg_dict: dict[str, Any], lr: float, path: Path | None) -> Path:
    """A copy of the resolved preset with optim.lr = `lr`; never overwrites an existing file."""
    path = Path(path) if path is not None else default_apply_path(preset, lr)
    raw = dict(cfg_dict)
    old_lr = raw["optim"]["lr"]
    raw["optim"] = {**raw["optim"], "lr": lr}
    note = f"optim.lr {lr:g} from cifar-tui lr-find (was {old_lr:g})"
    raw["description"] = f"{raw['description'].rstrip()} [{note}]".strip()
    header = f"# {preset_stem(preset)} with {note}\n"
    try:
        with path.open("x") as fh:  # exclusive create: an existing file is never replaced
            fh.write(header + yaml.safe_dump(raw, sort_keys=False))
    except FileExistsError:
        _refuse_existing(path)
        raise
    except OSError as exc:
        raise BadInputError(f"cannot write {path}: {exc.strerror or exc}") from None
    load_config(str(path))  # the copy must load as a preset (raises ConfigError if not)
    return path


def render_plot(curve: dict[str, Any], width: int | None = None, height: int = 20) -> str:
    """Loss (raw and smoothed) against the learning rate on a log axis; a line at the suggestion."""
    lrs, losses, smoothed = curve["lrs"], curve["losses"], curve["smoothed"]
    if not lrs:
        return "(no points to plot)"
    cols = width or min(shutil.get_terminal_size((100, 24)).columns, 120)
    plt.clear_figure()
    plt.plotsize(cols, height)
    plt.theme("clear")
    plt.scatter(lrs, losses, label="loss", marker="·")
    plt.plot(lrs, smoothed, label="smoothed", marker="braille")
    plt.xscale("log")
    best = smoothed.index(min(smoothed))
    top, bottom = max(smoothed[: best + 1]), min(losses)
    if top > bottom:  # the blow-up past the minimum would squash the interesting part
        span = top - bottom
        plt.ylim(bottom - 0.05 * span, top + 0.15 * span)
    first, last = math.ceil(math.log10(lrs[0])), math.floor(math.log10(lrs[-1]))
    if last > first:
        ticks = [10.0**k for k in range(first, last + 1)]
        plt.xticks(ticks, [f"{t:g}" for t in ticks])
    if curve.get("suggestion"):
        plt.vline(curve["suggestion"])
    plt.title(f"LR finder: suggested lr {curve['suggestion']:g}" if curve.get("suggestion") else "")
    plt.xlabel("learning rate (log scale)")
    text: str = plt.build()
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        text = plt.uncolorize(text)
    return text
