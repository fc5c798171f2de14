"""Getting a `sizing: auto` recipe (the first run) ready to launch: its data found, downloaded
or replaced by the synthetic set, then its size chosen for the device (`engine.sizing`).

Unlike a normal run, the first run never fails for want of the dataset: offline it trains on
the synthetic set and says so (`datafiles.synthetic_banner`). Torch-free and Textual-free: the
headless command and the dashboard's preparation panel both call `prepare_first_run`.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine.cifar_download import fetch_cifar100
from engine.config import RunConfig, load_config
from engine.datafiles import download_folder, search_folders, synthetic_banner
from engine.datafiles import find_cifar100 as has_cifar100
from engine.download import ProgressFn
from engine.errors import ConfigError, DataError
from engine.sizing import DeviceInfo, apply_sizing, first_run_sizing

Say = Callable[[str], None]  # a line for the user: what the preparation is doing


@dataclass
class FirstRun:
    config: RunConfig  # sized, ready for `launch`
    notes: list[str] = field(default_factory=list)  # why the data is synthetic, if it is
    banner: str | None = None  # the SYNTHETIC banner, when it is


def probe_device(requested: str) -> DeviceInfo:
    """The device `train.device = requested` gets. `auto` and `cuda*` ask an engine process
    (`python -m engine.about`, the UI never imports torch); a CUDA that is not there is left
    for the engine to refuse, as for any run."""
    if requested == "cpu" or requested == "mps":
        return DeviceInfo(requested, requested)
    proc = subprocess.run(
        [sys.executable, "-m", "engine.about"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    try:
        cuda = bool(json.loads(proc.stdout)["cuda_available"])
    except (ValueError, KeyError, TypeError):
        cuda = False  # torch cannot say: the engine will, with its own error
    if requested.startswith("cuda") or cuda:
        return DeviceInfo("cuda", "cuda" if requested == "auto" else requested)
    return DeviceInfo("cpu", "cpu")


def saved_preset(preset: str) -> RunConfig | None:
    """The preset as saved (None: not a preset file any more, e.g. deleted meanwhile)."""
    try:
        return load_config(preset)
    except ConfigError:
        return None


def _with_data(cfg: RunConfig, **changes: Any) -> RunConfig:
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **changes))


def find_or_fetch(
    cfg: RunConfig, progress: ProgressFn | None, say: Say, fetch: Callable[..., object]
) -> tuple[RunConfig, list[str]]:
    """`cfg` pointed at the folder that holds CIFAR-100 (searched in the one order), else at
    the folder it was just downloaded into, else on the synthetic set; with the reasons."""
    if cfg.data.dataset != "cifar100":
        return cfg, []
    for folder in search_folders(cfg.data.data_dir):
        if has_cifar100(folder) is not None:
            say(f"CIFAR-100 found in {folder}")
            return _with_data(cfg, data_dir=str(folder.absolute())), []
    target = download_folder(cfg.data.data_dir)
    if not cfg.data.download:
        why = f"CIFAR-100 is not in {target} and data.download is off"
        return _with_data(cfg, dataset="synthetic"), [why]
    say(f"CIFAR-100 not found: downloading it into {target}")
    try:
        fetch(target, progress=progress)
    except DataError as exc:
        return _with_data(cfg, dataset="synthetic"), [str(exc)]
    return _with_data(cfg, data_dir=str(target.absolute())), []


def prepare_first_run(
    cfg: RunConfig,
    *,
    base: RunConfig | None = None,
    progress: ProgressFn | None = None,
    say: Say = lambda line: None,
    probe: Callable[[str], DeviceInfo] = probe_device,
    fetch: Callable[..., object] = fetch_cifar100,
) -> FirstRun:
    """The data (`find_or_fetch`), then the device's size (`engine.sizing`). `base`: the preset
    as saved; the keys `cfg` changed from it (`--set`, Setup) keep their values."""
    given = cfg.data.data_dir
    cfg, notes = find_or_fetch(cfg, progress, say, fetch)
    device = probe(cfg.train.device)
    sized = apply_sizing(cfg, first_run_sizing(device, cfg.data.dataset), base)
    banner = synthetic_banner(given) if notes else None
    return FirstRun(sized, notes, banner)
