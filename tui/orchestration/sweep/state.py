"""A sweep's state on disk and where each of its runs stands (torch-free).

`<checkpoints>/sweeps/<sweep id>.json` maps each planned (recipe, seed) to its run id as soon as
the run folder exists; a run's status is its outcome (`engine.outcome`: its lock and its
events). Started again, a
sweep skips finished runs (`done` or `diverged`), resumes an unfinished one from its last
checkpoint, and starts again a run that stopped before its first checkpoint.

`--stop-losers` (tui.orchestration.sweep.stop_losers) records its decisions here: `stopped`
maps a recipe to why it stopped, each of its runs left out carries `skipped` (the same reason),
`looked` lists the seed rounds already examined and `looks` counts the looks. Every later run
of the sweep keeps those runs skipped, and its table counts them as `stopped`, not `pending`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import strict_json
from engine.errors import BadInputError
from engine.outcome import RunStatus, SummaryError, read_outcome, read_summary
from tui.orchestration.exports.results_table import (
    RunResult,
    SweepTable,
    build_table,
    to_csv,
    to_markdown,
)
from tui.orchestration.sweep.plan import Plan

STATE_DIR = "sweeps"  # under the checkpoints root: <sweep id>.json, .md, .csv
FINISHED = (RunStatus.DONE, RunStatus.DIVERGED)  # a result: never run again


def state_dir(root: Path) -> Path:
    return root / STATE_DIR


def state_path(root: Path, sweep_id: str) -> Path:
    return state_dir(root) / f"{sweep_id}.json"


def _write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(strict_json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


@dataclass
class SweepState:
    """`<root>/sweeps/<sweep id>.json`: the plan and the run id of every planned run."""

    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path, plan: Plan) -> SweepState:
        """The saved state of this plan's sweep, or a fresh one (saved on the first `save`)."""
        path = state_path(root, plan.sweep_id)
        old: dict[str, Any] = {}
        if path.is_file():
            with contextlib.suppress(ValueError, OSError):
                old = strict_json.loads(path.read_text())
        old_runs = [e for e in old.get("runs", []) if isinstance(e, dict) and "key" in e]
        known = {e["key"]: e.get("run_id") for e in old_runs}
        skipped = {e["key"]: e["skipped"] for e in old_runs if isinstance(e.get("skipped"), str)}
        stopped = old.get("stopped")
        looked = old.get("looked")
        looks = old.get("looks")
        data = {
            "sweep_id": plan.sweep_id,
            "name": plan.spec.name,
            "description": plan.spec.description,
            "file": str(plan.spec.source.resolve()),
            "created": old.get("created", time.time()),
            "seeds": list(plan.spec.seeds),
            "recipes": [
                {"label": r.label, "preset": r.preset, "overrides": list(r.overrides)}
                for r in plan.spec.recipes
            ],
            "runs": [
                {
                    "key": r.key,
                    "recipe": r.recipe.label,
                    "preset": r.recipe.preset,
                    "seed": r.seed,
                    "run_id": known.get(r.key),
                    **({"skipped": skipped[r.key]} if r.key in skipped else {}),
                }
                for r in plan.runs
            ],
            "stopped": stopped if isinstance(stopped, dict) else {},
            "looked": looked if isinstance(looked, list) else [],
            "looks": looks if isinstance(looks, int) else 0,
        }
        return cls(path, data)

    def skipped(self, key: str) -> str | None:
        """Why --stop-losers left this planned run out (None: it is to run)."""
        return next((e.get("skipped") for e in self.data["runs"] if e["key"] == key), None)

    @property
    def stopped(self) -> dict[str, str]:
        """recipe label -> why --stop-losers stopped it."""
        return dict(self.data["stopped"])

    @property
    def looked(self) -> set[int]:
        """The seed rounds --stop-losers has examined."""
        return set(self.data["looked"])

    @property
    def looks(self) -> int:
        """How many looks --stop-losers has made (one may cover several rounds)."""
        return int(self.data["looks"])

    def record_look(
        self, seeds: set[int], stops: dict[str, str], keys: dict[str, list[str]]
    ) -> None:
        """One look: the rounds it covered and the recipes it stopped; `keys`: recipe -> the
        planned runs left out."""
        self.data["looked"] = sorted(self.looked | seeds)
        self.data["looks"] = self.looks + 1
        for recipe, why in stops.items():
            self.data["stopped"][recipe] = why
            for e in self.data["runs"]:
                if e["key"] in keys.get(recipe, ()):
                    e["skipped"] = why
        self.save()

    def run_id(self, key: str) -> str | None:
        return next((e["run_id"] for e in self.data["runs"] if e["key"] == key), None)

    def set_run_id(self, key: str, run_id: str | None) -> None:
        for e in self.data["runs"]:
            if e["key"] == key:
                e["run_id"] = run_id
        self.save()

    def save(self) -> None:
        _write_json_atomic(self.path, self.data)


def run_status(run_dir: Path) -> RunStatus:
    """Where a planned run stands (`engine.outcome`): not_started when it has no folder yet."""
    if not run_dir.is_dir():
        return RunStatus.NOT_STARTED
    return read_outcome(run_dir).status


def sweep_results(
    root: Path, sweep_id: str, warn: Callable[[str], None] = lambda _text: None
) -> tuple[dict[str, Any], list[RunResult]]:
    """A sweep's state and one RunResult per planned run (their summaries: engine.outcome). A
    damaged summary is said through `warn`; an unusable one leaves its run without a result."""
    path = state_path(root, sweep_id)
    try:
        data = strict_json.loads(path.read_text())
    except (OSError, ValueError):
        raise BadInputError(f"no readable sweep state {path}") from None
    results = []
    for e in data.get("runs", []):
        run_id = e.get("run_id")
        summary = None
        status = "pending"
        if run_id:
            run_dir = root / run_id
            status = run_status(run_dir)
            try:
                summary = read_summary(run_dir, warn)
            except SummaryError as exc:
                warn(str(exc))
        if e.get("skipped") and status not in FINISHED:
            status, summary = "stopped", None
        results.append(
            RunResult(e["recipe"], int(e["seed"]), run_id, status, summary, e.get("preset", ""))
        )
    return data, results


def sweep_table(
    root: Path, sweep_id: str, warn: Callable[[str], None] = lambda _text: None
) -> SweepTable:
    data, results = sweep_results(root, sweep_id, warn)
    stopped = data.get("stopped")
    title = f"sweep {data.get('name', sweep_id)} ({sweep_id})"
    return build_table(title, results, stopped if isinstance(stopped, dict) else None)


def sweep_ids(root: Path) -> list[str]:
    """Sweeps with a state file under `root`, oldest first."""
    folder = state_dir(root)
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob("*.json") if not p.name.startswith(".")]
    return [p.stem for p in sorted(files, key=lambda p: p.stat().st_mtime)]


def write_exports(root: Path, sweep_id: str, table: SweepTable) -> tuple[Path, Path]:
    """The table as `<root>/sweeps/<sweep id>.md` and `.csv`."""
    md, csv_path = state_dir(root) / f"{sweep_id}.md", state_dir(root) / f"{sweep_id}.csv"
    md.write_text(to_markdown(table))
    csv_path.write_text(to_csv(table))
    return md, csv_path


@contextlib.contextmanager
def sweep_lock(root: Path, sweep_id: str) -> Iterator[None]:
    """One process per sweep at a time: a second one is refused instead of racing the first."""
    path = state_dir(root) / f".{sweep_id}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            owner = f.read().strip() or "?"
            raise BadInputError(
                f"sweep {sweep_id} is already running (pid {owner}); wait for it or stop it"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
