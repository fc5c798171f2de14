"""The `cifar-tui` command. Bare: the dashboard; `--run PRESET`: a headless run; subcommands
(tui.cli.commands, registered on import)."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Annotated

import typer

from engine import strict_json
from engine.checkpoint_files import CheckpointError
from engine.errors import BadInputError
from engine.events import EVENTS_FILE, Failed, Finished
from engine.outcome import read_summary
from engine.sizing import needs_sizing
from tui.cli import commands as _commands  # noqa: F401  (registers the subcommands)
from tui.cli import completion
from tui.cli import first_run as _first_run  # noqa: F401  (registers `first-run`)
from tui.cli.common import (
    EXIT_BAD_INPUT,
    CheckpointsOpt,
    DataDirOpt,
    DeviceOpt,
    StartRequest,
    app,
    err,
    fail,
    require_terminal,
    run_dashboard,
)

RUN_PANEL = "Run options (with --run PRESET or --resume RUN)"


def version_text() -> str:
    """`cifar-tui --version`: this package, and torch and the device as an engine process sees
    them (torch is imported there, never in the UI)."""
    try:
        version = metadata.version("cifar-tui")
    except metadata.PackageNotFoundError:  # a checkout that was never installed
        version = "unknown (not installed)"
    lines = [f"cifar-tui {version}"]
    proc = subprocess.run(
        [sys.executable, "-m", "engine.about"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    try:
        info = json.loads(proc.stdout)
    except ValueError:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return "\n".join([*lines, f"torch: cannot be imported ({last})"])
    cuda = "available" if info["cuda_available"] else "not available"
    build = f"CUDA {info['cuda_build']} build" if info["cuda_build"] else "CPU-only build"
    lines += [
        f"torch {info['torch']} ({build}; CUDA {cuda}), torchvision {info['torchvision']}",
        f"device: {info['device']}",
        f"python {info['python']}",
    ]
    return "\n".join(lines)


def _print_version(value: bool) -> None:
    if value:
        print(version_text())
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="the versions of cifar-tui, torch and the device, then exit",
        ),
    ] = False,
    run: Annotated[
        str | None,
        typer.Option(
            "--run",
            metavar="PRESET",
            help="train a preset (name or YAML path) headless",
            autocompletion=completion.presets,
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start",
            metavar="PRESET",
            help="open the dashboard with PRESET training in its Monitor",
            autocompletion=completion.presets,
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="override a config key, e.g. optim.lr=0.05",
            rich_help_panel=RUN_PANEL,
            autocompletion=completion.set_keys,
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json", help="print the run summary as JSON on stdout", rich_help_panel=RUN_PANEL
        ),
    ] = False,
    checkpoints: CheckpointsOpt = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            metavar="RUN",
            help="continue run RUN (an id, or `last`)",
            autocompletion=completion.runs,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="with --resume: accept a changed config", rich_help_panel=RUN_PANEL
        ),
    ] = False,
    gpus: Annotated[
        int | None,
        typer.Option(
            "--gpus",
            min=1,
            metavar="N",
            help="data-parallel over N processes (torchrun, one per GPU; gloo on a CPU machine)",
            rich_help_panel=RUN_PANEL,
        ),
    ] = None,
    max_restarts: Annotated[
        int | None,
        typer.Option(
            "--max-restarts",
            min=0,
            metavar="K",
            help="with --gpus: restart a failed job up to K times, from its last checkpoint",
            rich_help_panel=RUN_PANEL,
        ),
    ] = None,
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    if start is not None:
        if run is not None or resume is not None or json_out or force or gpus or max_restarts:
            raise fail("--start PRESET opens the dashboard: it takes --set, --data-dir, --device")
        require_terminal()
        request = StartRequest(start, overrides or [], data_dir, device)
        raise typer.Exit(run_dashboard(checkpoints=checkpoints, start=request))
    if run is None and resume is None:
        launch_options = (gpus, max_restarts)
        source = ctx.get_parameter_source("data_dir")  # $CIFAR_TUI_DATA alone is no option
        data_dir_given = getattr(source, "name", None) == "COMMANDLINE"
        given = overrides or data_dir_given or device or json_out or force
        if given or launch_options != (None, None):
            raise fail(
                "--set, --data-dir, --device, --json, --force, --gpus and --max-restarts need "
                "--run PRESET"
            )
        require_terminal()
        raise typer.Exit(run_dashboard(checkpoints=checkpoints))
    if force and resume is None:
        raise fail("--force only applies to --resume RUN")
    if max_restarts is not None and gpus is None:
        raise fail("--max-restarts needs --gpus N (torchrun does the restarting)")
    raise typer.Exit(
        run_headless(
            run,
            overrides or [],
            data_dir,
            device,
            json_out,
            checkpoints,
            resume=resume,
            force=force,
            gpus=gpus,
            max_restarts=max_restarts or 0,
        )
    )


def run_headless(
    preset: str | None,
    overrides: list[str],
    data_dir: str | None,
    device: str | None,
    json_out: bool,
    checkpoints: Path | None,
    *,
    resume: str | None = None,
    force: bool = False,
    gpus: int | None = None,
    max_restarts: int = 0,
) -> int:
    """Train (or with `resume`, continue) a run in an engine process and render its events.

    With `gpus`, the engine runs under torchrun (see tui.orchestration.launcher.engine_command)."""
    from tui.orchestration.headless import HeadlessPrinter, follow
    from tui.orchestration.launcher import (
        AlreadyFinished,
        check_before_run,
        check_processes,
        completion,
        finished_exit,
        launch,
        prepare_resume,
        resolve_config,
        start_engine,
        torchrun_exit_code,
    )
    from tui.orchestration.procs import ForwardSignals, exit_code

    try:
        if resume is not None:
            plan = prepare_resume(
                resume,
                checkpoints,
                preset,
                overrides,
                data_dir=data_dir,
                device=device,
                force=force,
            )
            run_dir = plan.run_dir
            check_processes(plan.config, gpus)
            log = run_dir / EVENTS_FILE
            events_offset = log.stat().st_size if log.exists() else 0  # show only what is new
            process = start_engine(
                run_dir,
                plan.engine_args(),
                gpus=gpus,
                max_restarts=max_restarts,
                extra_env=plan.engine_env(),
            )
        else:
            assert preset is not None
            cfg = resolve_config(preset, overrides, data_dir=data_dir, device=device, check=False)
            if needs_sizing(cfg):  # the first run: its data found or fetched, sized to the device
                cfg = _first_run.prepare_headless(preset, cfg)
            check_before_run(cfg)
            check_processes(cfg, gpus)
            launched = launch(preset, cfg, checkpoints, gpus=gpus, max_restarts=max_restarts)
            run_dir, process, events_offset = launched.run_dir, launched.process, 0
    except AlreadyFinished as exc:
        if not exc.completed:
            raise fail(str(exc)) from None
        err.print(f"cifar-tui: {exc}", markup=False, highlight=False, soft_wrap=True)
        summary = read_summary(exc.run_dir)
        if json_out and summary is not None:
            print(strict_json.dumps(summary.to_dict()))
        return 0
    except (BadInputError, CheckpointError) as exc:
        raise fail(str(exc)) from None
    # echo_failures=False: the engine prints its own error line
    printer = HeadlessPrinter(err, echo_failures=False, run_dir=run_dir)
    with ForwardSignals(process) as forwarded:
        final = follow(run_dir, process, printer, offset=events_offset)
    code = exit_code(process)
    if gpus is not None:
        code = torchrun_exit_code(code, final, forwarded.received)
    if isinstance(final, Finished):  # the log says the run ended, whatever became of its engine
        died = exit_code(process)
        code, completed = finished_exit(run_dir, final, process, code, forwarded.received)
        if completed:
            err.print(
                f"cifar-tui: warning: the engine of run {run_dir.name} ended (exit {died}) after "
                f"the run finished; {completion(completed)}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    if final is None and code not in (0, EXIT_BAD_INPUT):  # killed: the engine said nothing
        err.print(
            f"cifar-tui: error: the engine of run {run_dir.name} ended without a final event "
            f"(exit {code}); it keeps its last checkpoint: cifar-tui --resume {run_dir.name}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if json_out:
        if isinstance(final, Finished):
            payload = final.summary
        elif isinstance(final, Failed):
            payload = {"run_id": run_dir.name, "status": final.status, "message": final.message}
        else:
            payload = {"run_id": run_dir.name, "status": "crashed", "exit_code": code}
        print(strict_json.dumps(payload))
    return code


def main() -> None:
    app()
