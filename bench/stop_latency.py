"""How long `cifar-tui --run` takes to exit after SIGTERM: in training, in the test pass, in TTA.

    python -m bench.stop_latency [--data-dir ../shared/data] [--delay 0.5]

The quickstart preset on real CIFAR-100 (10,000 test images) with a TTA of 12 views. One run is
trained, signalled `--delay` seconds after its first step event (the training figure), resumed
to the end of training and killed there, where the test pass is about to start (the engine
pauses itself: engine.test_hooks). Two copies of that folder are resumed: each pauses at the
second batch of the test pass (or TTA's third forward pass), is let go, and is signalled
`--delay` seconds later. A figure is the time from SIGTERM (sent to the CLI, which forwards it
as on Ctrl-C) to the CLI's exit; each exit code should be 143. The last line printed is one JSON
object with every number.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine import test_hooks  # noqa: E402
from engine.events import read_events  # noqa: E402
from engine.tta_views import DEFAULT_VIEWS  # noqa: E402

VIEWS = [*DEFAULT_VIEWS, "shift:2,2", "hflip+shift:2,2"]  # 12 distinct views


def _start(ck: Path, args: list[str], pause_at: str | None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CIFAR_TUI_CHECKPOINTS": str(ck), "NO_COLOR": "1"}
    env.pop(test_hooks.PAUSE_AT_ENV, None)
    if pause_at:
        env[test_hooks.PAUSE_AT_ENV] = pause_at
    cmd = [sys.executable, "-c", "from tui.cli import main; main()", *args]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL)


def _events(ck: Path) -> list:
    logs = list(ck.glob("*/events.jsonl"))
    return read_events(logs[0]) if logs else []


def _wait(predicate, what: str, timeout: float = 1800) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def _engine_pid(ck: Path) -> int:
    return [e for e in _events(ck) if e.type in ("run_started", "resumed")][-1].pid


def _paused(ck: Path, sessions: int) -> int:
    def ready() -> bool:
        starts = [e for e in _events(ck) if e.type in ("run_started", "resumed")]
        return len(starts) >= sessions and test_hooks.is_paused(starts[-1].pid)

    _wait(ready, "the engine to pause")
    return _engine_pid(ck)


def _stop(proc: subprocess.Popen[bytes], delay: float) -> tuple[float, int]:
    """(seconds from SIGTERM to exit, exit code), SIGTERM sent `delay` s from now."""
    time.sleep(delay)
    sent = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait()
    return time.perf_counter() - sent, code


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--delay", type=float, default=0.5, help="seconds into the phase")
    args = parser.parse_args()
    sets = ["data.dataset=cifar100", f"data.data_dir={json.dumps(args.data_dir)}"]
    sets.append("eval.tta=" + json.dumps(VIEWS))
    run_args = ["--run", "quickstart", *(a for s in sets for a in ("--set", s))]
    out: dict[str, float | int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ck = Path(tmp) / "trained"
        proc = _start(ck, run_args, None)
        _wait(lambda: any(e.type == "step" for e in _events(ck)), "the first step")
        out["training_s"], out["training_exit"] = _stop(proc, args.delay)
        run_id = next(ck.glob("*/events.jsonl")).parent.name
        proc = _start(ck, ["--resume", run_id], "test_pass")
        os.kill(_paused(ck, 2), signal.SIGKILL)
        proc.wait()
        for phase, point in (("test_pass", "test_batch:2"), ("tta", "tta:3")):
            copy = Path(tmp) / phase
            shutil.copytree(ck, copy)
            proc = _start(copy, ["--resume", run_id], point)
            os.kill(_paused(copy, 3), signal.SIGCONT)
            out[f"{phase}_s"], out[f"{phase}_exit"] = _stop(proc, args.delay)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
