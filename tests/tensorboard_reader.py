"""TensorBoard's own reader over an export: scalars by tag and the HParams sessions, as text.

Used by the export test, and by hand: `python -m tests.tensorboard_reader LOGDIR` prints the
HParams view (one row per run: its hyperparameters that differ between runs, and its metrics).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def read_run(folder: Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, Any]]:
    """(scalars {tag: [(step, value)]}, hparams {name: value}) of one run folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    scalars = {tag: [(s.step, s.value) for s in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    hparams: dict[str, Any] = {}
    try:
        contents: Iterable[bytes] = acc.PluginTagToContent("hparams").values()
    except KeyError:  # no HParams in this folder
        contents = []
    for content in contents:
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("session_start_info"):
            for name, value in data.session_start_info.hparams.items():
                kind = value.WhichOneof("kind")
                hparams[name] = getattr(value, kind) if kind else None
    return scalars, hparams


def hparams_view(logdir: Path) -> str:
    """The HParams table of every run under `logdir`: the hyperparameters that vary, then the
    `hparams/` metrics (last value)."""
    runs = {f.name: read_run(f) for f in sorted(logdir.iterdir()) if f.is_dir()}
    names = sorted({n for _, h in runs.values() for n in h})
    varying = [n for n in names if len({repr(h.get(n)) for _, h in runs.values()}) > 1]
    metrics = sorted({t for s, _ in runs.values() for t in s if t.startswith("hparams/")})
    header = ["run", *varying, *(m.removeprefix("hparams/") for m in metrics)]
    rows = [header]
    for run, (scalars, hp) in runs.items():
        cells = [run, *(_cell(hp.get(n)) for n in varying)]
        cells += [_cell(scalars[m][-1][1]) if m in scalars else "-" for m in metrics]
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


if __name__ == "__main__":
    print(hparams_view(Path(sys.argv[1])))
