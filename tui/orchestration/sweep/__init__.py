"""`cifar-tui sweep FILE.yaml`: several recipes times several seeds, then one result table.

- `spec`: the sweep file's schema and its checks (`parse_sweep` -> `SweepSpec`);
- `plan`: every (recipe, seed) resolved like `--run PRESET --set ...` (`plan_sweep` -> `Plan`);
- `state`: `<checkpoints>/sweeps/<sweep id>.json`, each run's status, the result table;
- `runner`: the runs themselves (`SweepRunner`), one per GPU or `--jobs N` at a time;
- `printer`: each run's display and the `--dry-run` plan table;
- `stop_losers`: the `--stop-losers` rule (a Bonferroni bound over the looks and rows);
- `seed_plan`: `--plan-seeds`, the seeds per row a difference needs, from the registry.

Torch-free, like the rest of the CLI: runs are engine processes started by
tui.orchestration.launcher.
"""

from tui.orchestration.sweep.plan import Plan, PlannedRun, plan_sweep
from tui.orchestration.sweep.printer import SweepPrinter, plan_table
from tui.orchestration.sweep.runner import SweepRunner, gpu_count
from tui.orchestration.sweep.spec import SWEEPS_DIR, Recipe, SweepSpec, parse_sweep, sweep_names
from tui.orchestration.sweep.state import (
    FINISHED,
    SweepState,
    run_status,
    state_path,
    sweep_ids,
    sweep_lock,
    sweep_results,
    sweep_table,
    write_exports,
)

__all__ = [
    "FINISHED",
    "SWEEPS_DIR",
    "Plan",
    "PlannedRun",
    "Recipe",
    "SweepPrinter",
    "SweepRunner",
    "SweepSpec",
    "SweepState",
    "gpu_count",
    "parse_sweep",
    "plan_sweep",
    "plan_table",
    "run_status",
    "state_path",
    "sweep_ids",
    "sweep_lock",
    "sweep_names",
    "sweep_results",
    "sweep_table",
    "write_exports",
]
