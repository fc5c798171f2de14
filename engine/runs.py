"""The runs registry: `checkpoints/runs.sqlite` (stdlib sqlite3, WAL), one row per run plus
per-epoch metrics, so that runs can be listed and compared without reading every run folder.
Torch-free: the CLI and dashboard read it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.events import Finished, json_kind
from engine.outcome import RunStatus, RunSummary, read_outcome
from engine.run_lock import LOCK_FILE

DB_FILE = "runs.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    preset TEXT NOT NULL,
    dataset TEXT NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    device TEXT,
    epochs INTEGER,
    epochs_done INTEGER DEFAULT 0,
    started REAL NOT NULL,
    heartbeat REAL NOT NULL,
    wall_s REAL,
    best_val_top1 REAL,
    best_epoch INTEGER,
    test_top1 REAL,
    test_top5 REAL,
    test_top1_last REAL,
    img_per_s REAL,
    pid INTEGER,
    sweep_id TEXT
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    train_loss REAL,
    train_top1 REAL,
    val_loss REAL,
    val_top1 REAL,
    val_top5 REAL,
    lr REAL,
    epoch_s REAL,
    PRIMARY KEY (run_id, epoch)
);
"""


@dataclass(frozen=True)
class RunRow:
    run_id: str
    preset: str
    dataset: str
    model: str
    status: str
    device: str | None
    epochs: int | None
    epochs_done: int
    started: float
    wall_s: float | None
    best_val_top1: float | None
    best_epoch: int | None
    test_top1: float | None
    test_top5: float | None
    test_top1_last: float | None
    img_per_s: float | None
    sweep_id: str | None = None  # the sweep (`cifar-tui sweep`) that planned this run


# columns added after the first release: (name, SQL type); an older runs.sqlite gets them on open
_ADDED_COLUMNS = (("sweep_id", "TEXT"),)


class RunRegistry:
    def __init__(self, root: Path) -> None:
        self.path = Path(root) / DB_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            _migrate(db)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()

    def start(
        self,
        run_id: str,
        *,
        preset: str,
        dataset: str,
        model: str,
        config: dict[str, Any],
        device: str,
        epochs: int,
    ) -> None:
        now = time.time()
        with self._connect() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs (run_id, preset, dataset, model, status, config,"
                " device, epochs, started, heartbeat, pid, sweep_id)"
                " VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    preset,
                    dataset,
                    model,
                    json.dumps(config),
                    device,
                    epochs,
                    now,
                    now,
                    os.getpid(),
                    self._sweep_of(run_id),
                ),
            )

    def _sweep_of(self, run_id: str) -> str | None:
        """The sweep id the launcher wrote into the run folder's run.json, if any."""
        try:
            return read_run_meta(self.path.parent / run_id).get("sweep_id")
        except (OSError, ValueError):
            return None

    def resume(self, run_id: str, *, config: dict[str, Any], epochs: int) -> None:
        """A run continues in a new process: running again, its history kept."""
        with self._connect() as db:
            db.execute(
                "UPDATE runs SET status = 'running', heartbeat = ?, pid = ?, config = ?, epochs = ?"
                " WHERE run_id = ?",
                (time.time(), os.getpid(), json.dumps(config), epochs, run_id),
            )

    def record_epoch(self, run_id: str, epoch: int, metrics: dict[str, Any]) -> None:
        cols = ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr", "epoch_s")
        with self._connect() as db:
            db.execute(
                f"INSERT OR REPLACE INTO epochs (run_id, epoch, {', '.join(cols)})"
                f" VALUES (?, ?, {', '.join('?' for _ in cols)})",
                (run_id, epoch, *(metrics.get(c) for c in cols)),
            )
            db.execute(
                "UPDATE runs SET epochs_done = ?, heartbeat = ?, best_val_top1 = ?, best_epoch = ?"
                " WHERE run_id = ?",
                (
                    epoch,
                    time.time(),
                    metrics.get("best_val_top1"),
                    metrics.get("best_epoch"),
                    run_id,
                ),
            )

    def finish(self, run_id: str, status: str, summary: dict[str, Any]) -> None:
        values = _finish_values(summary)
        with self._connect() as db:
            db.execute(
                "UPDATE runs SET status = ?, heartbeat = ?, "
                + ", ".join(f"{f} = ?" for f in values)
                + " WHERE run_id = ?",
                (status, time.time(), *values.values(), run_id),
            )

    def runs(self) -> list[RunRow]:
        """All runs, newest first. A row still `running` whose run folder no engine holds (its
        lock is free) follows the folder's events: their final event if the engine died after
        writing it (the row is repaired), else `crashed`."""
        names = [f for f in RunRow.__dataclass_fields__]
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {', '.join(names)} FROM runs ORDER BY started DESC"
            ).fetchall()
        out = []
        for row in rows:
            values = dict(zip(names, row, strict=True))
            if values["status"] == RunStatus.RUNNING:
                values = self._follow_events(values)
            out.append(RunRow(**values))
        return out

    def _follow_events(self, values: dict[str, Any]) -> dict[str, Any]:
        outcome = read_outcome(self.path.parent / values["run_id"])
        if outcome.status is RunStatus.RUNNING:
            return values
        if not outcome.status.final:
            return {**values, "status": RunStatus.CRASHED.value}
        summary = outcome.final.summary if isinstance(outcome.final, Finished) else {}
        self.finish(values["run_id"], outcome.status.value, summary)
        return {**values, "status": outcome.status.value, **_finish_values(summary)}

    def delete(self, run_id: str, *, remove_folder: bool = True) -> bool:
        """Forget a run: its registry rows and (by default) its run folder. False if unknown."""
        if not run_id or Path(run_id).name != run_id or run_id in (".", ".."):
            raise ValueError(f"not a run id: {run_id!r}")
        with self._connect() as db:
            db.execute("DELETE FROM epochs WHERE run_id = ?", (run_id,))
            deleted = db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,)).rowcount
        folder = self.path.parent / run_id
        if remove_folder and folder.is_dir():
            shutil.rmtree(folder)
            deleted = deleted or 1
        return bool(deleted)

    def epochs(self, run_id: str) -> list[dict[str, Any]]:
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(
                "SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)
            ).fetchall()
        return [dict(r) for r in rows]


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns an older runs.sqlite lacks (another process may race us to it)."""
    have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    for name, sql_type in _ADDED_COLUMNS:
        if name not in have:
            try:
                db.execute(f"ALTER TABLE runs ADD COLUMN {name} {sql_type}")
            except sqlite3.OperationalError as exc:
                if "duplicate column" not in str(exc):
                    raise


_FINISH_FIELDS = (
    "wall_s",
    "best_val_top1",
    "best_epoch",
    "test_top1",
    "test_top5",
    "test_top1_last",
    "img_per_s",
)


def _finish_values(summary: dict[str, Any]) -> dict[str, Any]:
    """The row's columns a finished run's summary (the `finished` event's) sets."""
    typed = RunSummary.from_dict(summary)
    return {f: getattr(typed, f) for f in _FINISH_FIELDS}


# --------------------------------------------------------------------------- run folders

RUN_META_FILE = "run.json"


def checkpoints_root(path: str | Path | None = None) -> Path:
    """Where runs land: the argument, else $CIFAR_TUI_CHECKPOINTS, else ./checkpoints."""
    return Path(path or os.environ.get("CIFAR_TUI_CHECKPOINTS") or "checkpoints")


def new_run_id(preset: str) -> str:
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in Path(preset).stem)[:40]
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}-{os.urandom(2).hex()}"


def create_run_dir(
    root: Path, preset: str, config_yaml: str, meta: dict[str, Any] | None = None
) -> tuple[str, Path]:
    """Make `<root>/<run-id>/` holding the resolved `config.yaml` and `run.json` (preset name,
    its creation time in ns, plus `meta`: a sweep's run adds `sweep_id`, `recipe` and `seed`).
    Two runs created at once get two folders: a taken id is drawn again."""
    root.mkdir(parents=True, exist_ok=True)
    while True:
        run_id = new_run_id(preset)
        run_dir = root / run_id
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            continue
    (run_dir / "config.yaml").write_text(config_yaml)
    (
        run_dir / LOCK_FILE
    ).touch()  # the engine's lock (engine.run_lock): the folder's layout is fixed
    info = {"run_id": run_id, "preset": preset, "created_ns": time.time_ns(), **(meta or {})}
    (run_dir / RUN_META_FILE).write_text(json.dumps(info) + "\n")
    return run_id, run_dir


def read_run_meta(run_dir: Path) -> dict[str, Any]:
    """A run folder's run.json: an object with the run's `run_id` and `preset` (strings).

    Raises RunMetaError (a BadInputError, and a ValueError) naming the file and its fault."""
    from engine.errors import RunMetaError

    path = Path(run_dir) / RUN_META_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunMetaError(f"{path} is missing: not a run folder") from None
    except OSError as exc:
        raise RunMetaError(f"{path} is unreadable: {exc.strerror or exc}") from None
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise RunMetaError(f"{path} is damaged: not valid JSON") from None
    if not isinstance(data, dict):
        raise RunMetaError(f"{path} is damaged: it holds {json_kind(data)}, not an object")
    missing = [k for k in ("run_id", "preset") if not isinstance(data.get(k), str) or not data[k]]
    if missing:
        raise RunMetaError(f"{path} is damaged: no {' or '.join(missing)} (a string)")
    return data


def _created_ns(run_dir: Path) -> int:
    """When the run folder was made: run.json's `created_ns`, else (older runs, a damaged
    run.json) the time run.json was last written."""
    meta = run_dir / RUN_META_FILE
    try:
        created = json.loads(meta.read_text()).get("created_ns")
    except (OSError, ValueError, AttributeError, RecursionError):
        created = None
    if isinstance(created, int) and not isinstance(created, bool):
        return created
    try:
        return meta.stat().st_mtime_ns
    except OSError:
        return 0


def run_ids(root: Path) -> list[str]:
    """Run folders under `root`, oldest first by creation time (two runs of one second are
    told apart: the id's time is only to the second)."""
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if (p / RUN_META_FILE).is_file()]
    return [p.name for p in sorted(folders, key=lambda p: (_created_ns(p), p.name))]


def _refused(run_dir: Path) -> bool:
    """A run its engine refused before training (bad input) and that has no checkpoint: not a
    run to resume or evaluate, so never `last`."""
    return (
        read_outcome(run_dir).status is RunStatus.BAD_INPUT and not (run_dir / "last.pt").exists()
    )


def find_run(root: Path, ref: str) -> Path:
    """The folder of run `ref`: a run id, a unique prefix of one, or `last` for the newest.

    Raises BadInputError naming the nearest id."""
    import difflib

    from engine.errors import BadInputError

    ids = run_ids(root)
    if ref == "last":
        newest = next((i for i in reversed(ids) if not _refused(root / i)), None)
        if newest is None:
            raise BadInputError(f"no runs in {root} to resume")
        return root / newest
    if ref in ids:
        return root / ref
    matches = [i for i in ids if i.startswith(ref)]
    if len(matches) == 1:
        return root / matches[0]
    if matches:
        raise BadInputError(
            f"run id {ref!r} is ambiguous in {root}: {len(matches)} runs start with it"
        )
    near = difflib.get_close_matches(ref, ids, n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]}?" if near else ""
    recent = ", ".join(ids[-3:]) or "none"
    raise BadInputError(
        f"unknown run {ref!r} in {root}: not a known run id{hint} (most recent: {recent})"
    )
