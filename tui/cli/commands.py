"""The `cifar-tui` subcommands: presets, sweep, runs (and its exports), attach, lr-find, eval."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from engine.config import load_config, recipe_summary
from engine.errors import BadInputError, ConfigError
from engine.presets import named_files, preset_description
from engine.presets import sources as preset_sources
from engine.runs import DB_FILE, RunRegistry, checkpoints_root, run_ids
from tui.cli import completion
from tui.cli.common import (
    CheckpointsOpt,
    DataDirOpt,
    DeviceOpt,
    app,
    err,
    fail,
    find_run,
    require_terminal,
    run_dashboard,
    stdout_console,
)
from tui.orchestration.runs_view import (
    CONFIG,
    View,
    arrange,
    flatten_config,
    plain,
    sort_key,
)

T = TypeVar("T")


@app.command()
def presets() -> None:
    """List the presets: ./presets, your own (the user folder), then the bundled recipe book."""
    columns = ["preset", "model", "optimizer", "loss", "augmentation", "epochs", "description"]
    out = stdout_console()
    out.print("preset folders, the first that has a name wins:", highlight=False)
    for source in preset_sources("preset"):
        there = "" if source.folder.is_dir() else "  (none yet)"
        out.print(f"  {source.label:<10} {source.folder}{there}", highlight=False, soft_wrap=True)
    table = Table()
    table.add_column("from", no_wrap=True)
    for column in columns[:2]:
        table.add_column(column, no_wrap=True)
    for column in columns[2:-1]:
        table.add_column(column)
    table.add_column(columns[-1], no_wrap=True, overflow="ellipsis", max_width=40)
    for entry in named_files("preset"):
        try:
            summary = recipe_summary(load_config(str(entry.path)))
            cells = [*(summary[c] for c in columns[1:-1]), preset_description(entry.path)]
        except ConfigError as exc:  # a damaged preset of the user's: said, the others listed
            cells = ["-"] * (len(columns) - 2) + [f"[red]{escape(str(exc))}[/]"]
        table.add_row(entry.source.label, entry.name, *cells)
    out.print(table)


@app.command()
def sweep(
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE",
            help="a sweep YAML file, or a sweep's name",
            autocompletion=completion.sweeps,
        ),
    ],
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", min=1, help="runs at once (default: one per GPU found, else 1)"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="check the file and show the plan; run nothing")
    ] = False,
    stop_losers: Annotated[
        bool,
        typer.Option(
            "--stop-losers",
            help="skip a recipe's remaining seeds once its interval lies below the best row's "
            "(Bonferroni over the planned looks and rows)",
        ),
    ] = False,
    plan_seeds: Annotated[
        bool,
        typer.Option(
            "--plan-seeds",
            help="say how many seeds per row detect --effect at 80 % power, from earlier runs "
            "in the registry; run nothing",
        ),
    ] = False,
    effect: Annotated[
        float | None,
        typer.Option(
            "--effect",
            metavar="PP",
            help="with --plan-seeds: the difference of test top-1 to detect, in percentage "
            "points (default 0.5)",
        ),
    ] = None,
    checkpoints: CheckpointsOpt = None,
) -> None:
    """Run several recipes times several seeds, then print their table (mean ± std over seeds).

    Started again, a sweep skips its finished runs and resumes the interrupted one. The table is
    also written as <checkpoints>/sweeps/<sweep id>.md and .csv.
    """
    from tui.orchestration import sweep as sweeps
    from tui.orchestration.exports.results_table import to_rich
    from tui.orchestration.launcher import check_writable
    from tui.orchestration.sweep.seed_plan import plan_seeds as plan_seed_counts
    from tui.orchestration.sweep.seed_plan import seed_plan_table

    if effect is not None and not plan_seeds:
        raise fail("--effect goes with --plan-seeds (the difference to plan the seeds for)")
    if effect is not None and not (math.isfinite(effect) and effect > 0):
        raise fail(f"--effect must be a positive number of percentage points, not {effect:g}")
    if plan_seeds and (dry_run or stop_losers):
        other = "--dry-run" if dry_run else "--stop-losers"
        raise fail(f"--plan-seeds runs nothing; leave out {other}")
    root = checkpoints_root(checkpoints)
    try:
        plan = sweeps.plan_sweep(sweeps.parse_sweep(file), data_dir=data_dir, device=device)
        if plan_seeds:
            planned = plan_seed_counts(plan, RunRegistry(root).tested_runs(), effect or 0.5)
            stdout_console().print(seed_plan_table(planned, f"sweep {plan.spec.name}"))
            raise typer.Exit(0)
        gpus = sweeps.gpu_count() if device is None else 0  # --device: every run there
        runner = sweeps.SweepRunner(
            plan,
            root,
            err,
            data_dir=data_dir,
            device=device,
            slots=jobs or max(1, gpus),
            gpus=gpus,
            stop_losers=stop_losers,
        )
        if dry_run:
            stdout_console().print(sweeps.plan_table(runner))
            raise typer.Exit(0)
        check_writable(root)
        with sweeps.sweep_lock(root, plan.sweep_id):
            code = runner.run()
    except BadInputError as exc:
        raise fail(str(exc)) from None
    table = sweeps.sweep_table(root, plan.sweep_id, warn)
    md, csv_path = sweeps.write_exports(root, plan.sweep_id, table)
    stdout_console().print(to_rich(table))
    err.print(f"table written to {md} and {csv_path}", soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def warn(text: str) -> None:
    """One warning line on stderr."""
    err.print(f"cifar-tui: warning: {text}", markup=False, highlight=False, soft_wrap=True)


def export_runs(root: Path, fmt: str | None, out: Path | None, tensorboard: Path | None) -> int:
    """`runs --export FORMAT [--out FILE]` and `runs --tensorboard DIR`."""
    from engine.sinks import write_atomic
    from tui.orchestration.exports.runs_export import EXPORT_FORMATS, export_text, write_tensorboard

    if fmt is None and tensorboard is None:
        raise fail("--out goes with --export csv|json")
    if fmt is not None and fmt not in EXPORT_FORMATS:
        raise fail(f"--export {fmt!r}: choose one of {', '.join(EXPORT_FORMATS)}")
    if out is not None and out.is_dir():
        raise fail(f"--out {out} is a folder: name the file to write")
    if tensorboard is not None and tensorboard.exists() and not tensorboard.is_dir():
        raise fail(f"--tensorboard {tensorboard} is a file: name a folder to write into")
    if not (root / DB_FILE).exists():
        raise fail(f"no runs registry in {root} (see --checkpoints)")
    if fmt is not None:
        text = export_text(root, fmt)
        if out is None:
            sys.stdout.write(text)
        else:
            _write_or_fail(out, lambda: write_atomic(out, text))
            err.print(f"runs written to {out}", soft_wrap=True, highlight=False)
    if tensorboard is not None:
        files = _write_or_fail(tensorboard, lambda: write_tensorboard(root, tensorboard))
        err.print(
            f"{len(files)} runs written to {tensorboard}: tensorboard --logdir {tensorboard}",
            soft_wrap=True,
            highlight=False,
        )
    return 0


def _write_or_fail(target: Path, write: Callable[[], T]) -> T:
    try:
        return write()
    except OSError as exc:
        raise fail(f"cannot write {target}: {exc.strerror or exc}") from None


def rebuild_registry(root: Path) -> None:
    """`runs --rebuild`: runs.sqlite replayed from the run folders' event logs."""
    if not root.is_dir():
        raise fail(f"no runs folder {root} (see --checkpoints)")
    registry = RunRegistry(root)
    count, aside = registry.rebuild()
    if aside is not None:
        err.print(
            f"the damaged registry was kept aside as {aside}", soft_wrap=True, highlight=False
        )
    folders = len(run_ids(root))
    err.print(
        f"rebuilt {registry.path} from the event logs: rows for {count} of the run folders "
        f"({folders}; a folder whose engine never started has none)",
        soft_wrap=True,
        highlight=False,
    )


runs_app = typer.Typer(rich_markup_mode="rich")
app.add_typer(runs_app, name="runs")


@runs_app.callback(invoke_without_command=True)
def runs(
    ctx: typer.Context,
    checkpoints: CheckpointsOpt = None,
    export: Annotated[
        str | None,
        typer.Option("--export", metavar="FORMAT", help="write every run as csv or json"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="with --export: the file to write (else stdout)")
    ] = None,
    tensorboard: Annotated[
        Path | None,
        typer.Option("--tensorboard", metavar="DIR", help="write TensorBoard event files to DIR"),
    ] = None,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="first write runs.sqlite again from the run folders' event logs (a damaged "
            "file is kept aside as runs.sqlite.damaged-<time>)",
        ),
    ] = False,
    sort: Annotated[
        str | None,
        typer.Option(
            "--sort",
            metavar="COLUMN",
            help="run, preset, status, best, test, time or a config key (optim.lr, shown as a "
            "column): scores largest first, config values smallest first",
        ),
    ] = None,
    reverse: Annotated[bool, typer.Option("--reverse", help="sort the other way")] = False,
    filter_text: Annotated[
        str | None,
        typer.Option(
            "--filter",
            metavar="TEXT",
            help="only the runs whose columns hold every word, or key=value (optim.name=sgd)",
        ),
    ] = None,
    columns: Annotated[
        list[str] | None,
        typer.Option("--column", metavar="KEY", help="a config key as a column (repeat)"),
    ] = None,
) -> None:
    """List past runs from the registry (newest first), or export them; `runs compare A B`
    compares runs.

    The registry, <checkpoints>/runs.sqlite, is derived from each run folder's event log
    (events.jsonl): when it is reported damaged, --rebuild writes it again from them.
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = checkpoints  # `runs --checkpoints DIR compare A B`
        return
    root = checkpoints_root(checkpoints)
    try:
        if rebuild:
            rebuild_registry(root)
        if export is not None or tensorboard is not None or out is not None:
            raise typer.Exit(export_runs(root, export, out, tensorboard))
        rows = RunRegistry(root).runs()
    except BadInputError as exc:
        raise fail(str(exc)) from None
    if not rows and not (root / DB_FILE).exists():
        folders = len(run_ids(root))
        stdout_console().print(
            f"no runs registry in {root}, though it holds run folders ({folders}): "
            "cifar-tui runs --rebuild"
            if folders
            else f"no runs yet in {root}"
        )
        return
    view = View(config_keys=list(dict.fromkeys(columns or [])), filter=filter_text or "")
    flat = {k: flatten_config(c) for k, c in RunRegistry(root).configs().items()}
    try:
        view.sort, view.descending = _sort(view, sort, {k for f in flat.values() for k in f})
    except BadInputError as exc:
        raise fail(f"--sort/--column {exc}") from None
    view.descending ^= reverse
    every, shown, cells = arrange(rows, flat, view, False, time.time())
    table = Table(box=box.SIMPLE_HEAD, title=f"runs in {root}", title_justify="left")
    keys = [c for c in every if c.key != "data"]  # the CLI's columns: no data, as before
    for column in keys:
        table.add_column(view.header(column) if sort else column.label, no_wrap=True)
    for r in shown:
        table.add_row(*(plain(cells[r.run_id][c.key]) for c in keys))
    if view.filter:
        table.caption = (
            f"{len(shown)} of {len(rows)} runs match {view.filter!r} (words: in the columns "
            "shown; key=value: a config key)"
        )
    stdout_console().print(table)


@runs_app.command("compare")
def compare(
    ctx: typer.Context,
    refs: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN... [vs RUN...]",
            help="two runs or more (ids, unique prefixes, `last`); runs of one config but for "
            "the seed form one arm, or name the arms: A1 A2 vs B1 B2",
            autocompletion=completion.runs,
        ),
    ],
    checkpoints: CheckpointsOpt = None,
    top: Annotated[
        int,
        typer.Option(
            "--top", min=0, help="the N largest gains and losses per class (0: every class)"
        ),
    ] = 10,
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            metavar="NAME",
            help="also a metric by epoch: val_top1, val_loss, train_loss, train_top1 or lr",
        ),
    ] = None,
) -> None:
    """Compare runs: the config keys that differ, the change in recall per class and superclass.

    Each arm after the first is compared with the first: recall per class and superclass, and
    the confusions that grew and shrank most. With several seeds an arm, each class's change is
    t-tested across seeds (paired by seed when the arms hold the same seeds, else Welch) and
    the changes that survive Benjamini-Hochberg at FDR 0.05 are marked *.
    """
    from click.core import ParameterSource

    from tui.cli.compare_cmd import compare_command

    if (
        ctx.obj is not None
        and ctx.get_parameter_source("checkpoints") != ParameterSource.COMMANDLINE
    ):
        checkpoints = ctx.obj  # `runs --checkpoints DIR compare`: over the environment's
    try:
        compare_command(checkpoints_root(checkpoints), refs, top or None, metric, stdout_console())
    except BadInputError as exc:
        raise fail(str(exc)) from None


def _sort(view: View, sort: str | None, config_keys: set[str]) -> tuple[str, bool]:
    """The sort column and direction `--sort` asks for; a config key also becomes a column.
    BadInputError for a name that is neither."""
    for key in view.config_keys:
        sort_key(key, config_keys)  # a --column no run has: refused
        if key not in config_keys:
            raise BadInputError(f"{key!r} is no config key of these runs")
    if sort is None:
        return "run", True
    key = sort_key(sort, config_keys)
    if key.startswith(CONFIG) and key[len(CONFIG) :] not in view.config_keys:
        view.config_keys.append(key[len(CONFIG) :])
    column = next(c for c in view.columns(False) if c.key == key)
    return key, column.numeric or key == "run"


@app.command()
def attach(
    run: Annotated[
        str,
        typer.Argument(
            metavar="RUN", help="a run id (or prefix), or `last`", autocompletion=completion.runs
        ),
    ],
    checkpoints: CheckpointsOpt = None,
) -> None:
    """Reopen the live view of a running or finished run from its event log."""
    from tui.orchestration.supervisor import never_started, no_events_text

    run_dir = find_run(run, checkpoints)
    if never_started(run_dir):
        raise fail(no_events_text(run_dir))
    require_terminal()
    raise typer.Exit(run_dashboard(checkpoints=checkpoints, attach=run_dir))


@app.command("lr-find")
def lr_find(
    preset: Annotated[
        str,
        typer.Argument(
            metavar="PRESET", help="a preset name or YAML path", autocompletion=completion.presets
        ),
    ],
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="override a config key",
            autocompletion=completion.set_keys,
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    start: Annotated[float, typer.Option("--start", help="first learning rate")] = 1e-5,
    end: Annotated[float, typer.Option("--end", help="last learning rate")] = 10.0,
    steps: Annotated[int, typer.Option("--steps", help="optimizer steps in the sweep")] = 100,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE.json", help="default ./lr_find_<preset>.json"),
    ] = None,
    apply: Annotated[
        bool,
        typer.Option("--apply", help="write ./<preset>_lr<value>.yaml with optim.lr suggested"),
    ] = False,
    apply_to: Annotated[
        Path | None,
        typer.Option("--apply-to", metavar="PATH", help="--apply, written to PATH instead"),
    ] = None,
) -> None:
    """LR range test: sweep the learning rate, plot the loss, suggest a rate (exit 3: none)."""
    from tui.cli.lr_find import run as run_lr_find

    try:
        code = run_lr_find(
            preset,
            overrides or [],
            data_dir=data_dir,
            device=device,
            start=start,
            end=end,
            steps=steps,
            out=out,
            apply=apply,
            apply_to=apply_to,
        )
    except BadInputError as exc:
        raise fail(str(exc)) from None
    raise typer.Exit(code)


@app.command("eval")
def eval_checkpoint(
    target: Annotated[
        str,
        typer.Argument(
            metavar="CHECKPOINT",
            help="a .pt file, or a run id (prefix, `last`): its best.pt",
            autocompletion=completion.runs,
        ),
    ],
    tta: Annotated[
        bool,
        typer.Option(
            "--tta",
            help="test-time augmentation with the default views: identity, hflip, 2-pixel shifts "
            "along x and y with and without the flip (10 views: 10x the cost of a plain eval)",
        ),
    ] = False,
    views: Annotated[
        list[str] | None,
        typer.Option(
            "--views",
            metavar="VIEW",
            help="these views instead (implies --tta; repeat, or space-separate): identity, "
            "hflip, shift:dx,dy, hflip+shift:dx,dy with dx, dy in [-4, 4]",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    data_dir: DataDirOpt = None,
    device: DeviceOpt = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="default: the run's eval.batch_size")
    ] = None,
    top_losses: Annotated[
        int | None,
        typer.Option(
            "--top-losses",
            metavar="K",
            min=1,
            help="instead of evaluating: the run's K most confidently wrong test images and its "
            "calibration (ECE, reliability bins), read from its eval.npz",
        ),
    ] = None,
    checkpoints: CheckpointsOpt = None,
) -> None:
    """Evaluate a saved checkpoint on the test set, optionally with test-time augmentation."""
    from tui.cli.eval_cmd import eval_command

    try:
        if top_losses is not None:
            from tui.cli.top_losses import top_losses_command

            if tta or views:
                raise BadInputError("--top-losses reads the saved test results: no --tta/--views")
            raise typer.Exit(
                top_losses_command(
                    target,
                    top_losses,
                    json_out=json_out,
                    checkpoints=checkpoints,
                    console=stdout_console(),
                )
            )
        code = eval_command(
            target,
            tta=tta,
            views=views,
            json_out=json_out,
            data_dir=data_dir,
            device=device,
            batch_size=batch_size,
            checkpoints=checkpoints,
            console=stdout_console(),
        )
    except BadInputError as exc:
        raise fail(str(exc)) from None
    raise typer.Exit(code)
