"""Start an engine process for a preset (torch-free); resume checks.

The engine runs as `python -m engine run RUN_DIR` in its own session, so a dropped terminal does
not kill training; SIGINT/SIGTERM received here are forwarded to it once (tui.orchestration.procs
.ForwardSignals), and the engine then finishes its step, checkpoints and exits 130/143.

With `gpus` the engine runs data-parallel: `python -m torch.distributed.run --standalone
--nproc_per_node N [--max-restarts K] -m engine run RUN_DIR` (torchrun; see engine.distributed).
torchrun forwards SIGINT/SIGTERM to every process, but exits 1 whenever it was signalled or a
process failed: `torchrun_exit_code` recovers the engine's own exit code from rank 0's final event.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine import exit_codes
from engine.checkpoint_files import CheckpointError, previous_path, read_verified
from engine.completion import complete_records
from engine.config import (
    RESUME_CONFIG_ENV,
    RunConfig,
    config_changes,
    config_to_dict,
    dump_config,
    load_config,
)
from engine.datafiles import WHERE_HINT, check_cifar100_files
from engine.errors import BadInputError, ConfigError
from engine.events import EVENTS_FILE, Event, Failed, Finished
from engine.outcome import RunStatus, read_outcome
from engine.run_lock import holder_pid
from engine.runs import checkpoints_root, create_run_dir, find_run, read_run_meta


@dataclass
class LaunchedRun:
    run_id: str
    run_dir: Path
    config: RunConfig
    process: subprocess.Popen[bytes]


def resolve_config(
    preset: str,
    overrides: list[str],
    *,
    data_dir: str | None = None,
    device: str | None = None,
    check: bool = True,
) -> RunConfig:
    """Preset + `--set` overrides + the CLI's shortcuts, validated. Raises ConfigError.
    `check=False`: without `check_before_run` (a first run finds its data itself)."""
    extra = list(overrides)
    if data_dir is not None:
        extra.append(f"data.data_dir={json.dumps(data_dir)}")  # JSON strings are valid YAML
    if device is not None:
        extra.append(f"train.device={json.dumps(device)}")
    cfg = load_config(preset, extra)
    if check:
        check_before_run(cfg)
    return cfg


def check_before_run(cfg: RunConfig, *, where: str = WHERE_HINT) -> None:
    """What a parsed config must pass before a run folder exists, beyond `parse_config`: its
    dataset's files are there (or will be downloaded). `--run`, sweeps and Setup's check line
    all call this, so Setup says "valid" exactly when `--run` would start. `where`: how the
    advice says to point at another data folder. Raises DataError."""
    if cfg.data.dataset == "cifar100":
        check_cifar100_files(cfg.data.data_dir, cfg.data.download, where)


def check_writable(root: Path) -> None:
    """Refuse a runs folder we cannot write into before anything starts."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise BadInputError(
            f"cannot write to the checkpoints folder {root} ({exc.strerror or exc}); "
            "choose another with --checkpoints or $CIFAR_TUI_CHECKPOINTS"
        ) from None


def launch(
    preset: str,
    cfg: RunConfig,
    checkpoints: str | Path | None = None,
    *,
    stdout: Any = None,
    stderr: Any = None,
    log_file: str | None = None,
    gpus: int | None = None,
    max_restarts: int = 0,
    edited: bool = False,
) -> LaunchedRun:
    """Create the run folder (resolved config.yaml) and start the engine process on it.

    `edited`: the config is `preset` changed in Setup: the run id says `<preset>-edited` and
    run.json (then the run_started event) records `edited: true`; `preset` stays the origin.

    `stdout` / `stderr`: where the engine's output goes (default: our stderr, inherited).
    `log_file`: a file name inside the run folder that takes both instead (the dashboard's
    choice: the terminal belongs to the UI); it wins over `stdout` and `stderr`.
    """
    name = Path(preset).stem if preset.endswith((".yaml", ".yml")) else preset
    root = checkpoints_root(checkpoints)
    check_writable(root)
    meta, label = ({"edited": True}, f"{name}-edited") if edited else (None, None)
    run_id, run_dir = create_run_dir(root, name, dump_config(cfg), meta, label=label)
    process = start_engine(
        run_dir,
        [],
        stdout=stdout,
        stderr=stderr,
        log_file=log_file,
        gpus=gpus,
        max_restarts=max_restarts,
    )
    return LaunchedRun(run_id, run_dir, cfg, process)


def engine_command(
    run_dir: Path, args: list[str], gpus: int | None = None, max_restarts: int = 0
) -> list[str]:
    """`python -m engine run RUN_DIR ARGS`, or with `gpus` the same under torchrun, one process
    per GPU (per CPU slot with train.device=cpu: gloo), restarted up to `max_restarts` times."""
    engine = ["-m", "engine", "run", str(run_dir), *args]
    if gpus is None:
        return [sys.executable, *engine]
    torchrun = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}"]
    return [sys.executable, *torchrun, f"--max-restarts={max_restarts}", *engine]


def check_processes(cfg: RunConfig, gpus: int | None) -> None:
    """Refuse, before anything starts, a global batch that does not split over `gpus` processes
    (the engine refuses it too)."""
    if gpus is not None and cfg.data.batch_size % gpus:
        raise ConfigError(
            f"data.batch_size = {cfg.data.batch_size} (the global batch) does not divide by "
            f"--gpus {gpus}; use a multiple of {gpus}"
        )


def torchrun_exit_code(code: int, final: Event | None, received: int | None) -> int:
    """The exit code `python -m engine run` would have given (see engine/__main__.py), from
    rank 0's final event and the signal forwarded to torchrun (which itself exits 1). Also the
    code of an engine killed after its `finished` event: the run ended as its log says."""
    if isinstance(final, Finished):
        if final.status == "diverged":
            return exit_codes.DIVERGED
        if final.status == "interrupted" and received is not None:
            return exit_codes.after_signal(received)
        if final.status == "interrupted" and code != 0:  # torchrun signalled directly (a UI)
            return exit_codes.TERMINATED
        return exit_codes.OK  # done, or stopped on request (stop_after_epoch)
    if isinstance(final, Failed):
        if final.status == "interrupted":
            return exit_codes.after_signal(received or signal.SIGINT)
        return exit_codes.BAD_INPUT if final.status == "bad_input" else exit_codes.ERROR
    return exit_codes.after_signal(received) if received is not None else code


def finished_exit(
    run_dir: Path,
    final: Finished,
    process: subprocess.Popen[bytes],
    code: int,
    received: int | None,
) -> tuple[int, list[str]]:
    """(exit code, records completed) once an engine whose log ends with `finished` is gone.
    Killed after that event, it may not have written its summary, registry row or card: they
    are completed from the log (`engine.completion`), and its own death (137 for SIGKILL) is not
    the run's outcome: the code follows the event, as `torchrun_exit_code` reads it."""
    completed = complete_records(run_dir)
    if process.returncode < 0:  # killed by a signal after its last word
        code = torchrun_exit_code(code, final, received)
    return code, completed


def start_engine(
    run_dir: Path,
    extra_args: list[str],
    *,
    stdout: Any = None,
    stderr: Any = None,
    log_file: str | None = None,
    gpus: int | None = None,
    max_restarts: int = 0,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `python -m engine run RUN_DIR [extra_args]` in its own session (see `launch`);
    with `gpus`, torchrun starting that many (see `engine_command`). `extra_env`: variables
    for the engine (a resume's new config: `ResumePlan.engine_env`)."""
    env = {k: v for k, v in os.environ.items() if k != RESUME_CONFIG_ENV}  # never inherited
    env.update(extra_env or {})
    if gpus is not None and gpus > 1:
        env.setdefault("OMP_NUM_THREADS", "1")  # torchrun's own default, without its banner
    out = stdout if stdout is not None else sys.stderr
    err = stderr
    log = None
    if log_file is not None:
        log = (run_dir / log_file).open("ab")
        out = err = log
    try:
        quiet = ["--no-progress"] if log is not None else []
        return subprocess.Popen(
            engine_command(run_dir, [*quiet, *extra_args], gpus, max_restarts),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
            env=env,
        )
    finally:
        if log is not None:
            log.close()  # the child holds its own descriptor


# --------------------------------------------------------------------------- resume


@dataclass(frozen=True)
class ResumePlan:
    """A resume checked by the launcher: nothing in the run folder has changed yet. The engine
    adopts `new_config` (replacing config.yaml, the old one kept as config.prev.yaml) only once
    it has accepted the resume: a refused resume leaves every file as it was."""

    run_dir: Path
    config: RunConfig  # the config the resumed run trains with
    changes: list[str]  # recipe keys that differ from the run's config (allowed by --force)
    new_config: str | None  # the resolved config when it differs from config.yaml, else None
    force: bool = False

    def engine_args(self) -> list[str]:
        return ["--resume", *(["--force"] if self.force else [])]

    def engine_env(self) -> dict[str, str]:
        return {RESUME_CONFIG_ENV: self.new_config} if self.new_config is not None else {}


class AlreadyFinished(BadInputError):
    """`--resume` of a finished run: nothing to train. `completed`: the records its engine did
    not get to write (killed after its `finished` event), written now from its event log."""

    def __init__(self, run_dir: Path, completed: list[str]) -> None:
        self.run_dir, self.completed = run_dir, completed
        if completed:
            super().__init__(f"run {run_dir.name} was already finished; {completion(completed)}")
        else:
            super().__init__(f"run {run_dir.name} has already finished; nothing to resume")


def completion(completed: list[str]) -> str:
    """`its summary and card were completed from its event log`, for the records named."""
    names = " and ".join([", ".join(completed[:-1]), completed[-1]] if completed[1:] else completed)
    return f"its {names} {'were' if completed[1:] else 'was'} completed from its event log"


def prepare_resume(
    run_ref: str,
    checkpoints: str | Path | None,
    preset: str | None,
    overrides: list[str],
    *,
    data_dir: str | None = None,
    device: str | None = None,
    force: bool = False,
) -> ResumePlan:
    """Find the run, check its checkpoint and config, and write nothing.

    Without `preset` the run's own config.yaml is the preset. A changed recipe is refused unless
    `force`. A finished run with the same config raises `AlreadyFinished`, its missing records
    completed. Raises BadInputError / ConfigError / CheckpointError with a one-line message.
    """
    run_dir = find_run(checkpoints_root(checkpoints), run_ref)
    read_run_meta(run_dir)  # the engine needs it: a damaged run.json is refused here, at once
    status = read_outcome(run_dir).status  # the run's lock, then its last event
    if status is RunStatus.RUNNING:
        pid = holder_pid(run_dir)
        raise BadInputError(
            f"run {run_dir.name} is already running (engine pid {pid}): attach to it with "
            f"cifar-tui attach {run_dir.name}, or stop it first"
        )
    events = run_dir / EVENTS_FILE
    if not os.access(run_dir, os.W_OK) or (events.exists() and not os.access(events, os.W_OK)):
        raise BadInputError(f"cannot resume run {run_dir.name}: its folder {run_dir} is read-only")
    old = load_config(str(run_dir / "config.yaml"))
    new = resolve_config(
        preset or str(run_dir / "config.yaml"), overrides, data_dir=data_dir, device=device
    )
    changes = config_changes(config_to_dict(old), config_to_dict(new))
    if changes and not force:
        shown = ", ".join(changes[:6]) + (" ..." if len(changes) > 6 else "")
        raise ConfigError(
            f"run {run_dir.name} was started with a different config ({shown}); resume with the "
            "same preset and --set values, or add --force to continue with the new one"
        )
    if not changes and status is RunStatus.DONE:  # with changes (--force): it trains on
        raise AlreadyFinished(run_dir, complete_records(run_dir))
    last = run_dir / "last.pt"
    try:
        read_verified(last)
    except CheckpointError:
        if not previous_path(last).exists():
            raise
        read_verified(previous_path(last))  # the engine falls back to it, with a warning
    differs = config_to_dict(old) != config_to_dict(new)
    return ResumePlan(run_dir, new, changes, dump_config(new) if differs else None, force)
