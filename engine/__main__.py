"""Engine process entry point: `python -m engine run RUN_DIR`.

RUN_DIR holds the resolved `config.yaml` and `run.json` (written by the launcher). The process
writes events, checkpoints and the registry row, and exits with:
0 done, 2 bad input (config or data), 128+N after signal N (130 SIGINT, 143 SIGTERM), 1 anything
unexpected (traceback saved to RUN_DIR/traceback.txt, one line on stderr).
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType

from engine.config import parse_config, read_yaml
from engine.errors import BadInputError
from engine.events import EVENTS_FILE, EventWriter, Failed
from engine.runs import RunRegistry, read_run_meta

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT = 0, 1, 2


def run(run_dir: Path, progress: bool = True) -> int:
    meta = read_run_meta(run_dir)
    run_id, preset = meta["run_id"], meta["preset"]
    events = EventWriter(run_dir / EVENTS_FILE)
    registry = RunRegistry(run_dir.parent)
    trainer = None

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        if trainer is None:  # still starting up: nothing to save
            raise KeyboardInterrupt
        trainer.stop_signal = signum
        signal.signal(signum, signal.SIG_DFL)  # a second signal stops at once

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        cfg = parse_config(read_yaml(run_dir / "config.yaml"))
        from engine.trainer import Trainer  # torch import: after the cheap checks

        trainer = Trainer(cfg, run_dir, run_id, preset, events, registry, progress=progress)
        summary = trainer.run()
    except BadInputError as exc:
        events.emit(Failed(status="bad_input", message=str(exc)))
        registry.finish(run_id, "bad_input", {})  # no-op when the run never started
        print(f"cifar-tui: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        events.emit(Failed(status="interrupted", message="interrupted before training started"))
        return 128 + signal.SIGINT
    except Exception as exc:
        path = run_dir / "traceback.txt"
        path.write_text(traceback.format_exc())
        message = f"{type(exc).__name__}: {exc}"
        events.emit(Failed(status="error", message=message, traceback_path=str(path)))
        registry.finish(run_id, "failed", {})
        print(f"cifar-tui: unexpected error: {message} (traceback: {path})", file=sys.stderr)
        return EXIT_ERROR
    finally:
        events.close()
    if summary["status"] == "interrupted" and trainer.stop_signal is not None:
        return 128 + trainer.stop_signal
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="train the run prepared in RUN_DIR")
    run_parser.add_argument("run_dir", type=Path)
    run_parser.add_argument("--no-progress", action="store_true", help="no download progress bar")
    args = parser.parse_args(argv)
    return run(args.run_dir, progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
