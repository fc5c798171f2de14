"""What the dashboard costs: training throughput with the dashboard attached vs headless, and the
time of one Monitor redraw with a 200-epoch history.

    .venv/bin/python -m bench.dashboard_overhead [--repeats N] [--subset N] [--epochs N]

Both throughput runs train the same tiny synthetic config through the real engine process, one
after the other, on this machine: headless (`cifar-tui --run`, rich progress on a pipe) and
through the dashboard (the Textual app in headless mode: the Monitor's worker starts the engine,
tails its events and redraws at up to 4 Hz). The engine reports img/s in its summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.events import parse_event  # noqa: E402
from tests.tui.fixtures import make_events, typed  # noqa: E402

PRESET = """\
description: dashboard overhead benchmark (synthetic, tiny)
model: {{name: wrn, depth: 10, width: 1}}
data: {{dataset: synthetic, batch_size: 32, val_size: 100, subset: {subset}, num_workers: 0}}
augment:
  - {{name: random_crop, padding: 4}}
  - {{name: hflip}}
optim: {{name: sgd, lr: 0.05}}
schedule: {{name: cosine, warmup_epochs: 0}}
train: {{epochs: {epochs}, seed: 0, log_interval_s: 0.1}}
eval: {{test: false}}
"""


def headless_run(preset: Path, checkpoints: Path) -> dict:
    env = {**os.environ, "CIFAR_TUI_CHECKPOINTS": str(checkpoints)}
    out = subprocess.run(
        [sys.executable, "-c", "from tui.cli import main; main()", "--run", str(preset), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


async def _dashboard_run(preset: Path, checkpoints: Path) -> dict:
    from engine.config import load_config
    from engine.events import Finished
    from tui.app import CifarApp

    app = CifarApp(checkpoints=checkpoints, presets_dir=preset.parent)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.start_run(preset.stem, load_config(str(preset)))
        while True:
            state = app.monitor.state if app.monitor else None
            if state is not None and state.final is not None:
                break
            await pilot.pause(0.2)
        assert isinstance(state.final, Finished), state.final
        redraws = sum(p.draws for p in app.monitor.query("MetricPlot"))
        return {**state.final.summary, "plot_draws": redraws}


def dashboard_run(preset: Path, checkpoints: Path) -> dict:
    return asyncio.run(_dashboard_run(preset, checkpoints))


async def _redraw_ms(epochs: int, step_events: int, rounds: int) -> tuple[float, float, int]:
    from tui.app import CifarApp
    from tui.screens.monitor import MonitorScreen
    from tui.supervisor import RunState

    with tempfile.TemporaryDirectory() as tmp:
        app = CifarApp(checkpoints=Path(tmp))
        async with app.run_test(size=(120, 40)) as pilot:
            state = RunState(Path(tmp) / "r")
            state.apply(
                [
                    parse_event(typed(e).to_json())
                    for e in make_events("r", epochs, step_events=step_events)
                ]
            )
            screen = MonitorScreen(run_dir=state.run_dir)
            screen.supervise_run = lambda: None  # type: ignore[method-assign] - no log to follow
            await app.push_screen(screen)
            await pilot.pause()
            screen.state = state
            points = len(state.step_loss)
            plots = list(screen.query("MetricPlot"))
            draw, full = [], []
            for _ in range(rounds):
                t0 = time.perf_counter()
                screen.draw_plots()  # downsample + hand the data to plotext
                t1 = time.perf_counter()
                for p in plots:
                    p.render()  # plotext builds the canvas: what a screen refresh costs
                t2 = time.perf_counter()
                draw.append(t1 - t0)
                full.append(t2 - t0)
            return 1e3 * statistics.median(draw), 1e3 * statistics.median(full), points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="pairs of runs (alternating)")
    parser.add_argument("--subset", type=int, default=640)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()

    epochs, step_events = 200, 50
    draw_ms, full_ms, points = asyncio.run(_redraw_ms(epochs, step_events, 20))
    print(
        f"redraw, {epochs}-epoch history ({points} step points, 3 plots, 120x40): "
        f"{full_ms:.1f} ms per redraw ({draw_ms:.1f} ms data + downsampling, the rest plotext)"
    )
    if args.skip_throughput:
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        preset = root / "presets" / "bench.yaml"
        preset.parent.mkdir()
        preset.write_text(PRESET.format(subset=args.subset, epochs=args.epochs))
        headless, dashboard = [], []
        for i in range(args.repeats):
            # alternate the order: the machine's load drifts between runs
            if i % 2:
                d = dashboard_run(preset, root / f"ck-dashboard-{i}")
                h = headless_run(preset, root / f"ck-headless-{i}")
            else:
                h = headless_run(preset, root / f"ck-headless-{i}")
                d = dashboard_run(preset, root / f"ck-dashboard-{i}")
            headless.append(h["img_per_s"])
            dashboard.append(d["img_per_s"])
            print(
                f"pair {i + 1}: headless {h['img_per_s']:.1f} img/s, "
                f"dashboard {d['img_per_s']:.1f} img/s ({d['plot_draws']} plot draws)"
            )
        h_med, d_med = statistics.median(headless), statistics.median(dashboard)
        print(
            f"throughput (median of {args.repeats}): headless {h_med:.1f} img/s, "
            f"dashboard attached {d_med:.1f} img/s, ratio dashboard/headless {d_med / h_med:.3f}"
        )


if __name__ == "__main__":
    main()
