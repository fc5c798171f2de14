"""Engine process entry point: `python -m engine run RUN_DIR [--resume]`.

RUN_DIR holds the resolved `config.yaml` and `run.json` (written by the launcher). The process
holds the run's lock (`engine.run_lock`: a second engine on the run is refused, exit 2), writes
events and checkpoints, and the registry row, summary.json and the card follow its events
(`engine.sinks`). It exits with:
0 done (or stopped on request), 2 bad input (config, data, checkpoint, a batch too large for the
device), 3 diverged (non-finite losses), 128+N after signal N (130 SIGINT, 143 SIGTERM),
1 anything unexpected (traceback saved to RUN_DIR/traceback.txt, one line on stderr).

Under torchrun (`engine.distributed`) every rank runs this; only rank 0 holds the lock and writes
events (other ranks save their tracebacks as traceback.rankN.txt). A failure while torchrun
still has restarts left (`--max-restarts`) is not final: nothing is recorded, and the restarted
group resumes from last.pt by itself (TORCHELASTIC_RESTART_COUNT > 0).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType

from engine import exit_codes, strict_yaml, test_hooks
from engine import world as torchrun
from engine.checkpoint_files import CheckpointError, previous_path
from engine.config import RESUME_CONFIG_ENV, parse_config
from engine.errors import BadInputError, RunMetaError
from engine.events import EVENTS_FILE, EventWriter, Failed
from engine.presets import read_yaml
from engine.run_lock import RunBusyError, RunLock
from engine.runs import RunRegistry, read_run_meta
from engine.sinks import RunRecorder, run_sinks, write_atomic

EXIT_OK, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_DIVERGED = (
    exit_codes.OK,
    exit_codes.ERROR,
    exit_codes.BAD_INPUT,
    exit_codes.DIVERGED,
)


def run(run_dir: Path, progress: bool = True, resume: bool = False, force: bool = False) -> int:
    """One engine per run folder: rank 0 holds the run's lock for the whole session. A resume
    first checks its checkpoint, then the lock is taken; a second engine on a held run is
    refused. A resume writes nothing until every check passed (`Trainer.on_resume_accepted`):
    a refused one leaves the folder and the registry exactly as they were."""
    try:
        meta = read_run_meta(run_dir)  # a damaged run.json: one line, nothing written
    except RunMetaError as exc:
        print(f"cifar-tui: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    world = torchrun.world()
    last = run_dir / "last.pt"
    if world.restart and (last.exists() or previous_path(last).exists()):
        resume = True  # torchrun restarted the group after a failure: continue from last.pt
    if resume:
        from engine.checkpoint import load_with_fallback  # torch: after the cheap checks
        from engine.loop_state import check_training_state

        try:
            check_training_state(*load_with_fallback(last)[:2])
        except CheckpointError as exc:
            print(f"cifar-tui: error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
    lock = RunLock(run_dir)
    if world.is_main:
        try:
            lock.acquire(signal_pid=torchrun.launcher_pid())
        except (RunBusyError, FileNotFoundError) as exc:
            reason = str(exc) if isinstance(exc, RunBusyError) else f"no run folder {run_dir}"
            print(f"cifar-tui: error: {reason}", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        return _run(run_dir, meta, progress, resume, force)
    finally:
        lock.release()


def _run(run_dir: Path, meta: dict[str, str], progress: bool, resume: bool, force: bool) -> int:
    run_id, preset = meta["run_id"], meta["preset"]
    from engine import distributed  # torch: once the run is ours

    world = torchrun.world()
    main = world.is_main  # only rank 0 writes events (and the records that follow them)
    events: EventWriter = (
        RunRecorder(
            run_dir / EVENTS_FILE,
            test_hooks.with_pause_points(run_sinks(run_dir, RunRegistry(run_dir.parent))),
        )
        if main
        else distributed.NullEventWriter()
    )
    trainer = None
    accepted = not resume  # a resume records nothing (not even its refusal) until accepted
    early: list[int] = []  # a signal that came while starting up (importing torch): nothing to save

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        # no exception from here: raised inside an import it would be swallowed ("Exception
        # ignored in ... _get_module_lock") and the run would train on
        if trainer is None:
            early.append(signum)
        else:
            trainer.stop_signal = signum
        signal.signal(signum, signal.SIG_DFL)  # a second signal stops at once

    def fail(status: str, message: str, code: int, traceback_path: Path | None = None) -> int:
        where = str(traceback_path) if traceback_path else None
        if world.final_attempt and accepted:  # else torchrun restarts the group (resuming)
            events.emit(Failed(status=status, message=message, traceback_path=where))
        suffix = f" (traceback: {traceback_path})" if traceback_path else ""
        if not world.final_attempt:
            suffix += f"; torchrun restarts the group (restart {world.restart + 1})"
        rank = f"rank {world.rank}: " if world.distributed else ""
        print(f"cifar-tui: error: {rank}{message}{suffix}", file=sys.stderr)
        return code

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        new_config = os.environ.get(RESUME_CONFIG_ENV) if resume else None
        cfg = parse_config(
            read_yaml(run_dir / "config.yaml")
            if new_config is None
            else strict_yaml.load(new_config)
        )
        from engine.trainer import Trainer  # torch import: after the cheap checks

        trainer = Trainer(cfg, run_dir, run_id, preset, events, progress, resume, force)

        def accept() -> None:
            nonlocal accepted
            accepted = True
            if main and new_config is not None:
                adopt_config(run_dir, new_config)

        trainer.on_resume_accepted = accept
        if early:
            raise KeyboardInterrupt
        summary = trainer.run()
        distributed.shutdown()
    except (BadInputError, CheckpointError) as exc:
        return fail("bad_input", str(exc), EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        if world.final_attempt and accepted:
            events.emit(Failed(status="interrupted", message="interrupted before training started"))
        return exit_codes.after_signal(early[0] if early else signal.SIGINT)
    except Exception as exc:
        if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
            batch = cfg.data.batch_size
            return fail(
                "bad_input",
                f"CUDA out of memory with data.batch_size = {batch}; try --set data.batch_size="
                f"{max(batch // 2, 1)} (no checkpoint was written for the failed step)",
                EXIT_BAD_INPUT,
            )
        if not accepted:  # a resume that never began writes nothing: the traceback goes here
            traceback.print_exc()
            return fail("error", f"{type(exc).__name__}: {exc}", EXIT_ERROR)
        path = run_dir / ("traceback.txt" if main else f"traceback.rank{world.rank}.txt")
        path.write_text(traceback.format_exc())
        return fail("error", f"{type(exc).__name__}: {exc}", EXIT_ERROR, path)
    finally:
        events.close()
    if summary["status"] == "diverged":
        print(
            f"cifar-tui: run {run_id} diverged (non-finite loss {cfg.train.max_bad_steps} steps "
            f"in a row); its last good checkpoint is {run_dir / 'last.pt'}",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    if summary["status"] == "interrupted" and trainer.stop_signal is not None:
        return exit_codes.after_signal(trainer.stop_signal)
    return EXIT_OK


def adopt_config(run_dir: Path, text: str) -> None:
    """A resume's new config replaces config.yaml, the old one kept as config.prev.yaml."""
    config = run_dir / "config.yaml"
    old = config.read_text()
    if old != text:  # (a torchrun restart of the group finds it adopted already)
        write_atomic(run_dir / "config.prev.yaml", old)
        write_atomic(config, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine")
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="train the run prepared in RUN_DIR")
    run_parser.add_argument("run_dir", type=Path)
    run_parser.add_argument("--no-progress", action="store_true", help="no download progress bar")
    run_parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    run_parser.add_argument(
        "--force",
        action="store_true",
        help="with --resume: train on although the recipe differs from the checkpoint's",
    )
    preview_parser = sub.add_parser("preview", help="augmentation preview for the dashboard")
    preview_parser.add_argument("config", type=Path, help="a preset or resolved config YAML")
    preview_parser.add_argument("out", type=Path, help="npz file to write")
    preview_parser.add_argument("--count", type=int, default=16)
    preview_parser.add_argument("--seed", type=int, default=0)
    eval_parser = sub.add_parser("eval", help="a checkpoint on the test set, optionally with TTA")
    eval_parser.add_argument("checkpoint", type=Path, help="a .pt checkpoint (best.pt, last.pt)")
    eval_parser.add_argument(
        "--tta", nargs="*", metavar="VIEW", help="views (engine.tta); none named: the default set"
    )
    eval_parser.add_argument("--out", type=Path, required=True, help="JSON report to write")
    eval_parser.add_argument("--data-dir", help="folder holding cifar-100-python/")
    eval_parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    eval_parser.add_argument("--batch-size", type=int, help="default: the run's eval.batch_size")
    eval_parser.add_argument("--no-progress", action="store_true", help="no download progress")
    eval_parser.add_argument(
        "--eval-file", type=Path, help="also write the plain evaluation there (an eval.npz)"
    )
    lr_parser = sub.add_parser("lr-find", help="LR range test; writes the curve as JSON")
    lr_parser.add_argument("config", type=Path, help="a preset or resolved config YAML")
    lr_parser.add_argument("out", type=Path, help="JSON file to write")
    lr_parser.add_argument("--start", type=float, default=1e-5)
    lr_parser.add_argument("--end", type=float, default=10.0)
    lr_parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args(argv)
    if args.command == "preview":
        return preview(args.config, args.out, args.count, args.seed)
    if args.command == "eval":
        from engine import evaluate_checkpoint

        return evaluate_checkpoint.main(args)
    if args.command == "lr-find":
        from engine import lr_finder

        return lr_finder.main(args.config, args.out, args.start, args.end, args.steps)
    return run(args.run_dir, not args.no_progress, args.resume, args.force)


def preview(config: Path, out: Path, count: int, seed: int = 0) -> int:
    from engine.preview import make_preview

    try:
        make_preview(parse_config(read_yaml(config)), out, count=count, seed=seed)
    except BadInputError as exc:
        print(f"cifar-tui: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
