"""What the dashboard costs: time to the first frame of `cifar-tui`, training throughput with the
dashboard attached vs headless, and the time of one Monitor redraw with a 200-epoch history.

    .venv/bin/python -m bench.dashboard_overhead [--first-frame N] [--repeats N] [--subset N]
        [--epochs N] [--skip-throughput]

First frame: `cifar-tui` is started N times on a pseudo-terminal (120x40, as a user's terminal
would be); the time from spawning it to the Setup screen's title and check line arriving on the
terminal is the first frame, to the form's first section label the filled form.

Both throughput runs train the same tiny synthetic config through the real engine process, one
after the other, on this machine: headless (`cifar-tui --run`, rich progress on a pipe) and
through the dashboard (the Textual app in headless mode: the Monitor's worker starts the engine,
tails its events and redraws at up to 4 Hz). The engine reports img/s in its summary.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
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


FIRST_FRAME = (b"Setup", b"valid")  # the title bar and the check line: Setup is on screen
FORM_FILLED = b"description"  # the form's first section label: it is built after the first frame


def cifar_tui_command() -> list[str]:
    script = Path(sys.executable).with_name("cifar-tui")  # the installed entry point
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from tui.cli import main; main()"]


def time_to_screen(
    checkpoints: Path, size: tuple[int, int] = (120, 40), timeout: float = 30.0
) -> tuple[float, float]:
    """Spawn `cifar-tui` on a pseudo-terminal of `size`; seconds until the first frame and until
    the form is filled, read from what it writes to the terminal. The process is killed after."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: becomes cifar-tui with the pty as its terminal
        os.chdir(ROOT)
        os.environ.update(TERM="xterm-256color", CIFAR_TUI_CHECKPOINTS=str(checkpoints))
        command = cifar_tui_command()
        os.execv(command[0], command)
    t0 = time.perf_counter()
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    out = b""
    first: float | None = None
    filled: float | None = None
    try:
        while time.perf_counter() - t0 < timeout:
            ready, _, _ = select.select([fd], [], [], 0.02)
            if not ready:
                continue
            try:
                out += os.read(fd, 1 << 16)
            except OSError:  # the child exited
                break
            now = time.perf_counter() - t0
            if first is None and all(s in out for s in FIRST_FRAME):
                first = now
            if filled is None and FORM_FILLED in out:
                filled = now
            if first is not None and filled is not None:
                break
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
    if first is None or filled is None:
        raise RuntimeError(f"cifar-tui drew no Setup screen within {timeout} s:\n{out[-2000:]!r}")
    return first, filled


def first_frame(repeats: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        time_to_screen(Path(tmp))  # warm the file cache: the first start reads every .pyc
        runs = [time_to_screen(Path(tmp)) for _ in range(repeats)]
    first = [r[0] for r in runs]
    filled = [r[1] for r in runs]
    print(
        f"first frame of cifar-tui (120x40 pty, median of {repeats}): "
        f"{statistics.median(first):.3f} s (min {min(first):.3f}, max {max(first):.3f}); "
        f"form filled {statistics.median(filled):.3f} s; "
        f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"
    )


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
    from tui.orchestration.runstate import RunState
    from tui.screens.monitor import MonitorScreen

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
    parser.add_argument(
        "--first-frame", type=int, default=7, metavar="N", help="starts to time (0: skip)"
    )
    args = parser.parse_args()

    if args.first_frame:
        first_frame(args.first_frame)

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
