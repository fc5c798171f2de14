"""`cifar-tui sweep FILE.yaml`: several recipes times several seeds, then one result table.

A sweep file is YAML in one of two forms (`name`, `description` and `set` are optional in both):

    name: tiny                     # default: the file's stem
    seeds: [0, 1]                  # every recipe runs once per seed (train.seed)
    set: {train.epochs: 2}         # `--set` overrides applied to every recipe
    presets:                       # one recipe per entry: a preset name or YAML path, or
      - resnet18                   # {preset: ..., label: ..., set: {...}} for a variant
      - {preset: resnet50, label: resnet50-lr0.05, set: {optim.lr: 0.05}}

    base: quickstart               # or: one preset and a grid of overrides,
    seeds: [0, 1, 2]               # one recipe per combination (the first key varies slowest)
    grid: {optim.lr: [0.05, 0.1], loss.label_smoothing: [0.0, 0.1]}

`set` values are written as a mapping of dotted keys (or a list of `key=value` strings) and go
through exactly the validation of `--set`; every recipe is resolved and checked before anything
runs. Runs go seed-major (every recipe with the first seed, then with the second, ...) so that an
interrupted sweep already has one run of each row.

State: the sweep id is the name plus a hash of the plan (each recipe as written: its preset's YAML
with the overrides and seed applied, without the keys that only say where a run executes);
`<checkpoints>/sweeps/<sweep id>.json` maps each planned (recipe, seed) to its run id as soon as
the run folder exists. Started again, a sweep skips finished runs (`done` or `diverged`),
resumes an unfinished one from its last checkpoint (the same path as `--resume`), and starts
again a run that stopped before its first checkpoint (its folder is removed). Ctrl-C stops the
current run (the engine saves last.pt) and the sweep exits 130.

With several GPUs (CUDA_VISIBLE_DEVICES, else `nvidia-smi -L`), that many runs go at once, each
on its own `cuda:i`; `--jobs N` sets the number (several CPU runs at once share the cores through
OMP_NUM_THREADS).

Torch-free, like the rest of the CLI: runs are engine processes started by tui.launcher.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import hashlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from engine.checkpoint_files import CheckpointError
from engine.config import RunConfig, apply_override, dump_config
from engine.errors import BadInputError, ConfigError
from engine.events import (
    EVENTS_FILE,
    Event,
    EventTail,
    Failed,
    Finished,
    RunStarted,
    parse_event,
)
from engine.presets import preset_path, read_yaml
from engine.runs import RunRegistry, create_run_dir
from tui.headless import HeadlessPrinter, duration
from tui.launcher import (
    WHERE_KEYS,
    exit_code,
    prepare_resume,
    resolve_config,
    start_engine,
)
from tui.results_table import RunResult, SweepTable, build_table

SWEEPS_DIR = Path(__file__).resolve().parents[1] / "sweeps"  # the bundled sweep files
STATE_DIR = "sweeps"  # under the checkpoints root: <sweep id>.json, .md, .csv
POLL_S = 0.2
FINISHED = ("done", "diverged")  # a run in one of these states is a result: never run again

_TOP_KEYS = ("name", "description", "seeds", "set", "presets", "base", "grid")
_ENTRY_KEYS = ("preset", "label", "set")


# --------------------------------------------------------------------------- the sweep file


@dataclass(frozen=True)
class Recipe:
    """One row of the table: a preset plus `--set` overrides (seed not included)."""

    label: str
    preset: str
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class SweepSpec:
    name: str
    description: str
    seeds: tuple[int, ...]
    recipes: tuple[Recipe, ...]
    source: Path


def sweep_names() -> list[str]:
    return sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml"))


def sweep_path(ref: str) -> Path:
    """A bundled sweep name (sweeps/NAME.yaml) or a path to a sweep file."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"sweep file {path} does not exist")
        return path
    bundled = SWEEPS_DIR / f"{ref}.yaml"
    if bundled.is_file():
        return bundled
    names = sweep_names()
    near = difflib.get_close_matches(ref, names, n=1, cutoff=0.5)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    raise ConfigError(f"unknown sweep {ref!r}{hint} (bundled: {', '.join(names) or 'none'})")


def _check_keys(raw: dict[Any, Any], valid: tuple[str, ...], where: str) -> None:
    for key in raw:
        if key not in valid:
            near = difflib.get_close_matches(str(key), valid, n=1, cutoff=0.5)
            hint = f"; did you mean {near[0]}?" if near else ""
            raise ConfigError(f"{where}: unknown key {key}{hint} (valid keys: {', '.join(valid)})")


def _overrides(raw: Any, where: str) -> tuple[str, ...]:
    """A `set` block -> `key=value` strings (values as JSON, which YAML reads back unchanged)."""
    if raw is None:
        return ()
    if isinstance(raw, list):
        if not all(isinstance(x, str) and "=" in x for x in raw):
            raise ConfigError(f"{where} must be a mapping of key: value or a list of 'key=value'")
        items = [tuple(x.split("=", 1)) for x in raw]
        pairs = [(k.strip(), v) for k, v in items]
        out = tuple(f"{k}={v}" for k, v in pairs)
    elif isinstance(raw, dict):
        pairs = [(str(k), v) for k, v in raw.items()]
        out = tuple(f"{k}={json.dumps(v)}" for k, v in pairs)
    else:
        raise ConfigError(f"{where} must be a mapping of key: value, got {raw!r}")
    for key, _ in pairs:
        if key == "train.seed":
            raise ConfigError(f"{where}: train.seed comes from the sweep's `seeds:` list")
    return out


def _seeds(raw: Any, where: str) -> tuple[int, ...]:
    if raw is None:
        return (0,)
    values = raw if isinstance(raw, list) else [raw]
    if not values or not all(isinstance(s, int) and not isinstance(s, bool) for s in values):
        raise ConfigError(f"{where}.seeds must be a list of integers, got {raw!r}")
    if any(s < 0 for s in values):
        raise ConfigError(f"{where}.seeds must be >= 0, got {raw!r}")
    if len(set(values)) != len(values):
        raise ConfigError(f"{where}.seeds lists a seed twice: {raw!r}")
    return tuple(values)


def _preset_recipes(raw: Any, where: str) -> list[Recipe]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where}.presets must be a non-empty list of presets")
    recipes = []
    for i, entry in enumerate(raw):
        at = f"{where}.presets.{i}"
        if isinstance(entry, str):
            recipes.append(Recipe(Path(entry).stem if entry.endswith(".yaml") else entry, entry))
            continue
        if not isinstance(entry, dict):
            raise ConfigError(f"{at} must be a preset name or {{preset: ..., set: ...}}")
        _check_keys(entry, _ENTRY_KEYS, at)
        preset = entry.get("preset")
        if not isinstance(preset, str):
            raise ConfigError(f"{at}.preset is missing (a preset name or YAML path)")
        label = entry.get("label") or Path(preset).stem
        recipes.append(Recipe(str(label), preset, _overrides(entry.get("set"), f"{at}.set")))
    return recipes


def _grid_recipes(base: Any, grid: Any, where: str) -> list[Recipe]:
    if not isinstance(base, str):
        raise ConfigError(f"{where}.base must be a preset name or YAML path, got {base!r}")
    if grid is None:
        return [Recipe(Path(base).stem, base)]
    if not isinstance(grid, dict) or not grid:
        raise ConfigError(f"{where}.grid must map dotted keys to lists of values")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}.grid.{key} must be a non-empty list of values")
        if key == "train.seed":
            raise ConfigError(f"{where}.grid: train.seed comes from the sweep's `seeds:` list")
    keys = [str(k) for k in grid]
    recipes = []
    for combo in itertools.product(*grid.values()):
        sets = tuple(f"{k}={json.dumps(v)}" for k, v in zip(keys, combo, strict=True))
        label = " ".join(f"{k}={_short(v)}" for k, v in zip(keys, combo, strict=True))
        recipes.append(Recipe(label, base, sets))
    return recipes


def _short(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def parse_sweep(ref: str) -> SweepSpec:
    """Read and check a sweep file (the structure; the recipes are resolved by `plan_sweep`)."""
    path = sweep_path(ref)
    raw = read_yaml(path)
    where = path.name
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping (keys: {', '.join(_TOP_KEYS)})")
    _check_keys(raw, _TOP_KEYS, where)
    has_presets, has_base = "presets" in raw, "base" in raw
    if has_presets == has_base:
        raise ConfigError(f"{where} needs either `presets:` (a list) or `base:` (+ `grid:`)")
    if "grid" in raw and not has_base:
        raise ConfigError(f"{where}: `grid:` goes with `base:`, not with `presets:`")
    common = _overrides(raw.get("set"), f"{where}.set")
    if has_presets:
        recipes = _preset_recipes(raw["presets"], where)
    else:
        recipes = _grid_recipes(raw["base"], raw.get("grid"), where)
    seen: set[str] = set()
    for r in recipes:
        if r.label in seen:
            raise ConfigError(f"{where}: two recipes are labelled {r.label!r}; give one a label:")
        seen.add(r.label)
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}.name must be a non-empty string")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}.description must be a string")
    return SweepSpec(
        name=name.strip(),
        description=description,
        seeds=_seeds(raw.get("seeds"), where),
        recipes=tuple(Recipe(r.label, r.preset, common + r.overrides) for r in recipes),
        source=path,
    )


# --------------------------------------------------------------------------- the plan


@dataclass
class PlannedRun:
    index: int  # 1-based, in run order
    recipe: Recipe
    seed: int
    config: RunConfig

    @property
    def key(self) -> str:
        return f"{self.recipe.label}#seed={self.seed}"

    @property
    def overrides(self) -> list[str]:
        return [*self.recipe.overrides, f"train.seed={self.seed}"]


@dataclass
class Plan:
    spec: SweepSpec
    sweep_id: str
    runs: list[PlannedRun]


def _recipe_as_written(preset: str, overrides: list[str]) -> dict[str, Any]:
    """The preset's YAML with the overrides applied, before any default is filled in, without the
    keys that only say where a run executes: what the sweep id hashes. A default added to the
    code later does not change it; an edited preset or override does."""
    data = read_yaml(preset_path(preset)) or {}
    for assignment in overrides:
        apply_override(data, assignment)
    for dotted in WHERE_KEYS:
        node: Any = data
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.get(p, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(last, None)
    return data


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in text)[:40].strip("-")


def plan_sweep(spec: SweepSpec, *, data_dir: str | None = None, device: str | None = None) -> Plan:
    """Resolve every (recipe, seed) as `--run PRESET --set ...` would; raises ConfigError."""
    runs = []
    order = [(seed, recipe) for seed in spec.seeds for recipe in spec.recipes]
    for i, (seed, recipe) in enumerate(order, 1):
        try:
            cfg = resolve_config(
                recipe.preset,
                [*recipe.overrides, f"train.seed={seed}"],
                data_dir=data_dir,
                device=device,
            )
        except BadInputError as exc:
            raise type(exc)(f"{spec.source.name}, recipe {recipe.label!r}: {exc}") from None
        runs.append(PlannedRun(i, recipe, seed, cfg))
    fingerprint = json.dumps(
        [[r.recipe.label, r.seed, _recipe_as_written(r.recipe.preset, r.overrides)] for r in runs],
        sort_keys=True,
    )
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:8]
    return Plan(spec, f"{_slug(spec.name) or 'sweep'}-{digest}", runs)


# --------------------------------------------------------------------------- state


def state_dir(root: Path) -> Path:
    return root / STATE_DIR


def state_path(root: Path, sweep_id: str) -> Path:
    return state_dir(root) / f"{sweep_id}.json"


def _write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
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
                old = json.loads(path.read_text())
        known = {e["key"]: e.get("run_id") for e in old.get("runs", []) if "key" in e}
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
                }
                for r in plan.runs
            ],
        }
        return cls(path, data)

    def run_id(self, key: str) -> str | None:
        return next((e["run_id"] for e in self.data["runs"] if e["key"] == key), None)

    def set_run_id(self, key: str, run_id: str | None) -> None:
        for e in self.data["runs"]:
            if e["key"] == key:
                e["run_id"] = run_id
        self.save()

    def save(self) -> None:
        _write_json_atomic(self.path, self.data)


def _last_event(log: Path, window: int = 1 << 16) -> Event | None:
    """The last complete event of a log, read from its tail (logs of long runs are large)."""
    try:
        with log.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - window))
            lines = f.read().split(b"\n")
    except OSError:
        return None
    for line in reversed(lines[:-1]):  # the piece after the last newline may be partial
        event = parse_event(line.decode("utf-8", "replace"))
        if event is not None:
            return event
    return None


def run_status(run_dir: Path) -> str:
    """Where a run stands, from the last event of its log: done | diverged | interrupted (its
    session ended with a `finished` event of that status) | failed | bad_input (a `failed`
    event) | incomplete (still running, or its engine died) | missing (no folder)."""
    if not run_dir.is_dir():
        return "missing"
    last = _last_event(run_dir / EVENTS_FILE)
    if isinstance(last, Finished):
        return last.status
    if isinstance(last, Failed):  # bad_input, error, or interrupted while starting up
        return "failed" if last.status == "error" else last.status
    return "incomplete"


def sweep_results(root: Path, sweep_id: str) -> tuple[dict[str, Any], list[RunResult]]:
    """A sweep's state and one RunResult per planned run (from the run folders' summary.json)."""
    path = state_path(root, sweep_id)
    try:
        data = json.loads(path.read_text())
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
            with contextlib.suppress(ValueError, OSError):
                summary = json.loads((run_dir / "summary.json").read_text())
        results.append(
            RunResult(e["recipe"], int(e["seed"]), run_id, status, summary, e.get("preset", ""))
        )
    return data, results


def sweep_table(root: Path, sweep_id: str) -> SweepTable:
    data, results = sweep_results(root, sweep_id)
    return build_table(f"sweep {data.get('name', sweep_id)} ({sweep_id})", results)


def sweep_ids(root: Path) -> list[str]:
    """Sweeps with a state file under `root`, oldest first."""
    folder = state_dir(root)
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob("*.json") if not p.name.startswith(".")]
    return [p.stem for p in sorted(files, key=lambda p: p.stat().st_mtime)]


def write_exports(root: Path, sweep_id: str, table: SweepTable) -> tuple[Path, Path]:
    """The table as `<root>/sweeps/<sweep id>.md` and `.csv`."""
    from tui.results_table import to_csv, to_markdown

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


# --------------------------------------------------------------------------- GPUs


def gpu_count() -> int:
    """GPUs this process may use, found without torch: CUDA_VISIBLE_DEVICES, else nvidia-smi."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        ids = [v for v in visible.split(",") if v.strip()]
        return 0 if not ids or ids[0].strip() == "-1" else len(ids)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


# --------------------------------------------------------------------------- running


class SweepPrinter(HeadlessPrinter):
    """The `--run` display for each run, with a one-line result instead of the summary table.

    `quiet` (several runs at once): only that line, since the epoch lines would interleave.
    """

    def __init__(self, console: Console, prefix: str, quiet: bool) -> None:
        super().__init__(console, echo_failures=False)
        self.prefix = prefix
        self.quiet = quiet

    def handle(self, event: Event) -> None:
        if self.quiet and not isinstance(event, Finished | Failed):
            return
        super().handle(event)

    def _on_finished(self, e: Finished) -> None:
        self.final = e
        self.stop()
        s = e.summary
        test = s.get("test_top1")
        result = "no test" if test is None else f"test top-1 {100 * test:.2f}%"
        self.console.print(
            f"{self.prefix} {e.status}: {result}, best val epoch {s.get('best_epoch')}, "
            f"{duration(s.get('wall_s'))}",
            soft_wrap=True,
            highlight=False,
        )

    def _on_failed(self, e: Failed) -> None:
        self.final = e
        self.stop()
        if self.quiet:
            self.console.print(f"{self.prefix} failed ({e.status}): {e.message}", soft_wrap=True)


def live_engine(run_dir: Path) -> int | None:
    """The pid of an engine process still working on `run_dir`, or None.

    The pid is the one its last `run_started` / `resumed` event names; where /proc exists, the
    process must also be an engine run on this folder (a reused pid is not taken for it). An
    engine that has not written its first event yet (still importing torch, loading data) is
    found by its command line in /proc."""
    starts = [e for e in EventTail(run_dir / EVENTS_FILE).poll() if isinstance(e, RunStarted)]
    pid = _engine_by_event(run_dir, starts[-1].pid) if starts else None
    return pid if pid is not None else _engine_by_cmdline(run_dir)


def _engine_by_cmdline(run_dir: Path) -> int | None:
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            # `... -m engine run <root>/<run id> ...`: run ids are unique, the root may be relative
            if (
                "engine" in args
                and "run" in args
                and any(Path(a).name == run_dir.name for a in args)
            ):
                return int(entry.name)
    return None


def _engine_by_event(run_dir: Path, pid: int) -> int | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():
        with contextlib.suppress(OSError):
            args = cmdline.read_bytes().split(b"\0")
            if b"engine" not in args or str(run_dir.name).encode() not in b" ".join(args):
                return None
    return pid


class EngineProcess:
    """An engine this sweep did not start (see `live_engine`), with the bits of Popen the sweep
    uses: followed until it exits; Ctrl-C is forwarded to it like to the sweep's own runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                self.returncode = 0  # unknown: the run's log says how it ended
            except PermissionError:
                pass
        return self.returncode

    def wait(self) -> int:
        while self.poll() is None:
            time.sleep(POLL_S)
        return 0

    def send_signal(self, signum: int) -> None:
        if self.returncode is not None:  # gone: its pid may be someone else's by now
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)

    @classmethod
    def ended(cls) -> EngineProcess:
        """An engine that has already exited (no pid is ever signalled)."""
        process = cls(pid=-1)
        process.returncode = 0
        return process


Process = subprocess.Popen[bytes] | EngineProcess  # an engine the sweep watches


class ForwardToRuns:
    """While active, SIGINT / SIGTERM stop every running engine (they checkpoint and exit)."""

    def __init__(self) -> None:
        self.processes: list[Process] = []
        self.received: int | None = None
        self._old: dict[int, Any] = {}

    def add(self, process: Process) -> None:
        self.processes.append(process)
        if self.received is not None:  # the signal came while this one was being started
            process.send_signal(self.received)

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self.received = signum
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signum)

    def __enter__(self) -> ForwardToRuns:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._old[sig] = signal.signal(sig, self._forward)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


@dataclass
class Job:
    run: PlannedRun
    run_dir: Path
    process: Process
    tail: EventTail
    printer: SweepPrinter
    slot: int


class SweepRunner:
    """Runs a plan's unfinished runs, `slots` at a time, recording run ids in the state."""

    def __init__(
        self,
        plan: Plan,
        root: Path,
        console: Console,
        *,
        data_dir: str | None = None,
        device: str | None = None,
        slots: int = 1,
        gpus: int = 0,
    ) -> None:
        """`slots` runs at once; with `gpus` > 1, slot i runs on cuda:(i mod gpus)."""
        self.plan, self.root, self.console = plan, root, console
        self.data_dir, self.device = data_dir, device
        self.slots = max(1, slots)
        self.gpus = gpus
        self.state = SweepState.load(root, plan)
        self.total = len(plan.runs)
        self.codes: dict[str, str] = {}  # key -> outcome of this session's runs

    def _prefix(self, run: PlannedRun) -> str:
        return f"[{run.index}/{self.total}] {run.recipe.label} · seed {run.seed}"

    def _slot_device(self, run: PlannedRun, slot: int) -> str | None:
        if self.gpus > 1 and self.device is None and run.config.train.device in ("auto", "cuda"):
            return f"cuda:{slot % self.gpus}"
        return self.device

    @contextlib.contextmanager
    def _cpu_share(self) -> Iterator[None]:
        """Several runs at once without GPUs: each engine gets its share of the CPU cores
        (OMP_NUM_THREADS, unless set already), instead of every one spinning on all of them."""
        if self.slots == 1 or self.gpus > 0 or "OMP_NUM_THREADS" in os.environ:
            yield
            return
        os.environ["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // self.slots))
        try:
            yield
        finally:
            del os.environ["OMP_NUM_THREADS"]

    def todo(self) -> list[tuple[PlannedRun, str]]:
        """(run, `follow` | `resume` | `start`) for each planned run not finished yet; `follow`:
        its engine still runs (the sweep that started it was stopped without it)."""
        out = []
        for run in self.plan.runs:
            run_id = self.state.run_id(run.key)
            if run_id is None:
                out.append((run, "start"))
                continue
            status = run_status(self.root / run_id)
            if status in FINISHED:
                continue
            if status == "incomplete":
                if live_engine(self.root / run_id) is not None:
                    out.append((run, "follow"))
                    continue
                # its engine may have written `finished` and exited between the two looks
                if run_status(self.root / run_id) in FINISHED:
                    continue
            has_checkpoint = any(
                (self.root / run_id / name).is_file() for name in ("last.pt", "last.prev.pt")
            )
            out.append((run, "resume" if has_checkpoint else "start"))
        return out

    def _start(self, run: PlannedRun, how: str, slot: int) -> Job:
        device = self._slot_device(run, slot)
        quiet = self.slots > 1
        output: dict[str, Any] = {"log_file": "engine.log"} if quiet else {}
        old_id = self.state.run_id(run.key)
        pid = live_engine(self.root / old_id) if how == "follow" and old_id else None
        if pid is not None and old_id is not None:
            self.console.print(
                f"{self._prefix(run)}: {old_id} is still running (pid {pid}); following it",
                soft_wrap=True,
                highlight=False,
            )
            run_dir = self.root / old_id
            offset = (run_dir / EVENTS_FILE).stat().st_size
            return self._job(run, run_dir, EngineProcess(pid), offset, slot)
        if how == "follow" and old_id is not None and run_status(self.root / old_id) in FINISHED:
            # the engine it was to follow wrote `finished` and exited since the plan was made:
            # a result, taken as it is (resuming it would run its test pass a second time)
            run_dir = self.root / old_id
            offset = (run_dir / EVENTS_FILE).stat().st_size
            return self._job(run, run_dir, EngineProcess.ended(), offset, slot)
        if how in ("resume", "follow") and old_id is not None:
            try:
                run_dir, _ = prepare_resume(
                    old_id, self.root, None, [], data_dir=self.data_dir, device=device
                )
            except (BadInputError, CheckpointError) as exc:
                self.console.print(
                    f"{self._prefix(run)}: cannot resume {old_id}: {exc}", soft_wrap=True
                )
                how = "start"
            else:
                self.console.print(
                    f"{self._prefix(run)}: resuming {old_id}", soft_wrap=True, highlight=False
                )
                offset = (run_dir / EVENTS_FILE).stat().st_size
                process = start_engine(run_dir, ["--resume"], **output)
                return self._job(run, run_dir, process, offset, slot)
        if old_id is not None:
            self._discard(run, old_id)
        cfg = resolve_config(
            run.recipe.preset, run.overrides, data_dir=self.data_dir, device=device
        )
        name = Path(run.recipe.preset).stem
        meta = {"sweep_id": self.plan.sweep_id, "recipe": run.recipe.label, "seed": run.seed}
        run_id, run_dir = create_run_dir(self.root, name, dump_config(cfg), meta)
        self.state.set_run_id(run.key, run_id)  # before the engine starts: never orphaned
        self.console.print(f"{self._prefix(run)}: run {run_id}", soft_wrap=True, highlight=False)
        process = start_engine(run_dir, [], **output)
        return self._job(run, run_dir, process, 0, slot)

    def _discard(self, run: PlannedRun, run_id: str) -> None:
        """Forget a planned run that has nothing to resume from, before starting it again."""
        gone = not (self.root / run_id).is_dir()
        RunRegistry(self.root).delete(run_id)
        why = "its folder is gone" if gone else "no usable checkpoint; its folder is removed"
        self.console.print(
            f"{self._prefix(run)}: {run_id} cannot continue ({why}); starting it again",
            soft_wrap=True,
            highlight=False,
        )

    def _job(
        self,
        run: PlannedRun,
        run_dir: Path,
        process: Process,
        offset: int,
        slot: int,
    ) -> Job:
        printer = SweepPrinter(self.console, self._prefix(run), quiet=self.slots > 1)
        return Job(run, run_dir, process, EventTail(run_dir / EVENTS_FILE, offset), printer, slot)

    def run(self) -> int:
        """Run what is left. Exit code: 0 all done, 3 some diverged, 1 some failed (others
        still ran), 2 bad input before any run, 128+N when stopped by signal N."""
        self.state.save()
        todo = deque(self.todo())
        finished = self.total - len(todo)
        resumes = sum(how == "resume" for _, how in todo)
        self.console.print(
            f"sweep {self.plan.sweep_id}: {len(self.plan.spec.recipes)} recipes x "
            f"{len(self.plan.spec.seeds)} seeds = {self.total} runs; {finished} finished, "
            f"{resumes} to resume, {len(todo) - resumes} to start"
            + (f"; {self.slots} at a time" if self.slots > 1 else ""),
            soft_wrap=True,
            highlight=False,
        )
        active: dict[int, Job] = {}
        stop_code: int | None = None
        with ForwardToRuns() as forward, self._cpu_share():
            while todo or active:
                free = [s for s in range(self.slots) if s not in active]
                while todo and free and stop_code is None and forward.received is None:
                    run, how = todo.popleft()
                    slot = free.pop(0)
                    try:
                        job = self._start(run, how, slot)
                    except BadInputError as exc:
                        self.console.print(f"{self._prefix(run)}: {exc}", soft_wrap=True)
                        self.codes[run.key] = "failed"
                        continue
                    active[slot] = job
                    forward.add(job.process)
                if not active:
                    break
                for slot, job in list(active.items()):
                    alive = job.process.poll() is None
                    for event in job.tail.poll():
                        job.printer.handle(event)
                    if alive:
                        continue
                    job.printer.stop()
                    del active[slot]
                    proc = job.process
                    code = exit_code(proc) if isinstance(proc, subprocess.Popen) else proc.wait()
                    status = run_status(job.run_dir)
                    self.codes[job.run.key] = status
                    if status == "interrupted" or code in (130, 143):
                        stop_code = code or stop_code or 0
                if active:
                    time.sleep(POLL_S)
        if forward.received is not None:
            stop_code = 128 + forward.received
        if stop_code is not None:
            self.console.print(
                f"sweep {self.plan.sweep_id} stopped; run `cifar-tui sweep "
                f"{self.plan.spec.source}` again to continue where it stopped",
                soft_wrap=True,
                highlight=False,
            )
            return stop_code
        outcomes = set(self.codes.values())
        if outcomes - {"done", "diverged"}:
            return 1
        return 3 if "diverged" in outcomes else 0


def plan_table(runner: SweepRunner) -> Table:
    """What `--dry-run` shows: every planned run, its overrides and what a start would do."""
    todo = {run.key: how for run, how in runner.todo()}
    table = Table(
        "#",
        "recipe",
        "seed",
        "preset",
        "overrides",
        "run",
        "next",
        title=f"sweep {runner.plan.sweep_id} ({runner.plan.spec.source})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for run in runner.plan.runs:
        table.add_row(
            str(run.index),
            run.recipe.label,
            str(run.seed),
            run.recipe.preset,
            " ".join(run.recipe.overrides) or "-",
            runner.state.run_id(run.key) or "-",
            todo.get(run.key, "finished"),
        )
    return table
