"""The runs registry: `checkpoints/runs.sqlite` (stdlib sqlite3, WAL), one row per run plus
per-epoch metrics, so that runs can be listed and compared without reading every run folder.
Torch-free: the CLI and dashboard read it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from engine.errors import BadInputError
from engine.events import Finished, json_kind
from engine.outcome import RunStatus, RunSummary, read_outcome
from engine.run_lock import LOCK_FILE

DB_FILE = "runs.sqlite"
CHECKPOINTS_ENV = "CIFAR_TUI_CHECKPOINTS"  # the runs folder, when no --checkpoints is given

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
WRITE_TIMEOUT_S = 2.0  # a writer waits this long for another's lock: a failed write is harmless
READ_TIMEOUT_S = 5.0
STALE_FILE = ".registry-stale"  # in a run folder: its rows fell behind its events (a failed write)
REBUILD_HINT = "rebuild it from the run folders with `cifar-tui runs --rebuild`"


class RegistryError(BadInputError):
    """`runs.sqlite` cannot be read or written: damaged, of another schema, locked, read-only.
    The message is the reader's one line; `reason` is what went wrong, for the engine's warning."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class RegistryLockedError(RegistryError):
    """Another process holds `runs.sqlite` locked."""


class RunRegistry:
    """`runs.sqlite` under `root`. Readers open it read-only and never create it; the writer (the
    engine's sink, `rebuild`, `delete`) creates and migrates the schema on its first write."""

    def __init__(self, root: Path) -> None:
        self.path = Path(root) / DB_FILE
        self._ready = False  # the schema checked, created and migrated by this writer
        self._batch: sqlite3.Connection | None = None  # the open `transaction()`

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """The writes inside share one transaction: all of them, or none."""
        if self._batch is not None:
            yield
            return
        with self._write() as db:
            self._batch = db
            try:
                yield
            finally:
                self._batch = None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; RegistryError when the file is damaged, locked or read-only."""
        if self._batch is not None:
            yield self._batch
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=WRITE_TIMEOUT_S)
        except (OSError, sqlite3.Error) as exc:
            raise self._error(exc, "write") from None
        try:
            if not self._ready:
                self._create(db)
            with db:
                yield db
        except sqlite3.Error as exc:
            raise self._error(exc, "write") from None
        finally:
            db.close()

    def _create(self, db: sqlite3.Connection) -> None:
        """The schema, checked before anything is written: a file of another schema is left as
        it is."""
        _check_schema(self.path, db)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(_SCHEMA)
        _migrate(db)
        self._ready = True

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection | None]:
        """A read-only connection to a checked registry; None when there is none (no runs)."""
        if not self.path.exists():
            yield None
            return
        # a folder nobody may write (read-only media): no -shm to share, nothing can change
        mode = "ro" if os.access(self.path.parent, os.W_OK) else "ro&immutable=1"
        sidecars = [p for p in self._sidecars() if not p.exists()]
        try:
            db = sqlite3.connect(
                f"{self.path.absolute().as_uri()}?mode={mode}", uri=True, timeout=READ_TIMEOUT_S
            )
        except sqlite3.Error as exc:
            raise self._error(exc, "read") from None
        error: RegistryError | None = None
        try:
            yield db if _check_schema(self.path, db) else None
        except sqlite3.Error as exc:
            error = self._error(exc, "read")
        except RegistryError as exc:
            error = exc
        finally:
            db.close()
        if error is not None:
            if not isinstance(error, RegistryLockedError):  # no writer uses a damaged file
                for sidecar in sidecars:
                    sidecar.unlink(missing_ok=True)  # what opening it made: left as it was
            raise error

    def _sidecars(self) -> list[Path]:
        """The files SQLite keeps beside a WAL database."""
        return [Path(f"{self.path}{suffix}") for suffix in ("-wal", "-shm")]

    def _error(self, exc: OSError | sqlite3.Error, doing: str) -> RegistryError:
        reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        where = f"cannot {doing} the runs registry {self.path}"
        if "locked" in reason or "busy" in reason:
            reason = "another process holds it locked"
            return RegistryLockedError(f"{where}: {reason}; try again", reason)
        return RegistryError(f"{where}: {reason}; {REBUILD_HINT}", reason)

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
        at: float | None = None,
        pid: int | None = None,
    ) -> None:
        """A new row, `running`, started `at` (default now) by process `pid` (default this)."""
        now = time.time() if at is None else at
        with self._write() as db:
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
                    os.getpid() if pid is None else pid,
                    self._sweep_of(run_id),
                ),
            )

    def _sweep_of(self, run_id: str) -> str | None:
        """The sweep id the launcher wrote into the run folder's run.json, if any."""
        try:
            return read_run_meta(self.path.parent / run_id).get("sweep_id")
        except (OSError, ValueError):
            return None

    def resume(
        self,
        run_id: str,
        *,
        config: dict[str, Any],
        epochs: int,
        at: float | None = None,
        pid: int | None = None,
    ) -> None:
        """A run continues in a new process: running again, its history kept."""
        with self._write() as db:
            db.execute(
                "UPDATE runs SET status = 'running', heartbeat = ?, pid = ?, config = ?, epochs = ?"
                " WHERE run_id = ?",
                (
                    time.time() if at is None else at,
                    os.getpid() if pid is None else pid,
                    json.dumps(config),
                    epochs,
                    run_id,
                ),
            )

    def record_epoch(
        self, run_id: str, epoch: int, metrics: dict[str, Any], at: float | None = None
    ) -> None:
        cols = ("train_loss", "train_top1", "val_loss", "val_top1", "val_top5", "lr", "epoch_s")
        with self._write() as db:
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
                    time.time() if at is None else at,
                    metrics.get("best_val_top1"),
                    metrics.get("best_epoch"),
                    run_id,
                ),
            )

    def finish(
        self, run_id: str, status: str, summary: dict[str, Any], at: float | None = None
    ) -> bool:
        """The run's final status and numbers; False when it has no row (refused at start)."""
        values = _finish_values(summary)
        with self._write() as db:
            return (
                db.execute(
                    "UPDATE runs SET status = ?, heartbeat = ?, "
                    + ", ".join(f"{f} = ?" for f in values)
                    + " WHERE run_id = ?",
                    (status, time.time() if at is None else at, *values.values(), run_id),
                ).rowcount
                > 0
            )

    def forget(self, run_id: str) -> bool:
        """Remove a run's rows (its folder is left alone). False if it had none."""
        with self._write() as db:
            db.execute("DELETE FROM epochs WHERE run_id = ?", (run_id,))
            return bool(db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,)).rowcount)

    def runs(self) -> list[RunRow]:
        """All runs, newest first; RegistryError when the file is damaged. Rows that fell behind
        their events (a write failed, `STALE_FILE`) are replayed from the log first. A row still
        `running` whose run folder no engine holds (its lock is free) follows the folder's
        events: their final event if the engine died after writing it (the row is repaired when
        the registry can be written), else `crashed`. A run refused at start before its row
        existed is given one from its folder (`engine.sinks.replay_refused`)."""
        from engine.sinks import replay_refused  # the sink maps events to rows; it imports this

        self._catch_up()
        rows = self._rows()
        if replay_refused(self, {r.run_id for r in rows}):
            rows = self._rows()
        return rows

    def _rows(self) -> list[RunRow]:
        names = [f for f in RunRow.__dataclass_fields__]
        with self._read() as db:
            if db is None:
                return []
            have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
            columns = [n if n in have else f"NULL AS {n}" for n in names]  # not migrated yet
            rows = db.execute(
                f"SELECT {', '.join(columns)} FROM runs ORDER BY started DESC"
            ).fetchall()
        out = []
        for row in rows:
            values = dict(zip(names, row, strict=True))
            if values["status"] == RunStatus.RUNNING:
                values = self._follow_events(values)
            out.append(RunRow(**values))
        return out

    def _catch_up(self) -> None:
        """Replay the runs whose rows fell behind; one that still cannot be written stays
        marked (its engine, a later reader or `--rebuild` catches it up)."""
        from engine.sinks import replay_run  # the sink maps events to rows; it imports this

        if not self.path.exists():  # a reader never creates the registry (`--rebuild` does)
            return
        for marker in sorted(self.path.parent.glob(f"*/{STALE_FILE}")):
            try:
                marker.unlink()
            except OSError:
                continue  # a folder we may not write: left to its owner
            try:
                replay_run(self, marker.parent)
            except RegistryError:
                with contextlib.suppress(OSError):
                    marker.touch()

    def _follow_events(self, values: dict[str, Any]) -> dict[str, Any]:
        outcome = read_outcome(self.path.parent / values["run_id"])
        if outcome.status is RunStatus.RUNNING:
            return values
        if not outcome.status.final:
            return {**values, "status": RunStatus.CRASHED.value}
        summary = outcome.final.summary if isinstance(outcome.final, Finished) else {}
        with contextlib.suppress(RegistryError):  # read-only or locked: repaired another time
            self.finish(values["run_id"], outcome.status.value, summary)
        return {**values, "status": outcome.status.value, **_finish_values(summary)}

    def delete(self, run_id: str, *, remove_folder: bool = True) -> bool:
        """Forget a run: its registry rows and (by default) its run folder. False if unknown."""
        if not run_id or Path(run_id).name != run_id or run_id in (".", ".."):
            raise ValueError(f"not a run id: {run_id!r}")
        deleted = self.forget(run_id)
        folder = self.path.parent / run_id
        if remove_folder and folder.is_dir():
            shutil.rmtree(folder)
            deleted = True
        return deleted

    def epochs(self, run_id: str) -> list[dict[str, Any]]:
        with self._read() as db:
            if db is None:
                return []
            db.row_factory = sqlite3.Row
            rows = db.execute(
                "SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", (run_id,)
            ).fetchall()
        return [dict(r) for r in rows]

    def configs(self) -> dict[str, dict[str, Any]]:
        """Each run's resolved config (run id -> its `config_to_dict` form), to compare runs."""
        with self._read() as db:
            rows = [] if db is None else db.execute("SELECT run_id, config FROM runs").fetchall()
        out = {}
        for run_id, text in rows:
            with contextlib.suppress(TypeError, ValueError, RecursionError):
                if isinstance(config := json.loads(text), dict):
                    out[run_id] = config
        return out

    def tested_runs(self) -> list[tuple[str, dict[str, Any], float]]:
        """(run id, resolved config, test top-1) of every `done` run with a test number, as
        stored: nothing is repaired or replayed (for readers that promise to write nothing)."""
        query = "SELECT run_id, config, test_top1 FROM runs WHERE status = 'done'"
        with self._read() as db:
            rows = [] if db is None else db.execute(query).fetchall()
        out = []
        for run_id, text, top1 in rows:
            if not isinstance(top1, int | float):
                continue
            with contextlib.suppress(TypeError, ValueError, RecursionError):
                if isinstance(config := json.loads(text), dict):
                    out.append((run_id, config, float(top1)))
        return out

    def rebuild(self) -> tuple[int, Path | None]:
        """Every run folder's rows replayed from its event log, in one transaction. A damaged
        file is first moved aside as `runs.sqlite.damaged-<time>`. Returns (the runs listed,
        where the damaged file went)."""
        from engine.sinks import replay_run  # the sink maps events to rows; it imports this

        aside = self._move_aside_if_damaged()
        self._ready = False  # a new file, or one another process may have changed
        root = self.path.parent
        with self.transaction(), self._write() as db:
            db.execute("DELETE FROM epochs")
            db.execute("DELETE FROM runs")
            for run_id in run_ids(root):
                replay_run(self, root / run_id)
            count = db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        for marker in root.glob(f"*/{STALE_FILE}"):
            marker.unlink(missing_ok=True)
        return count, aside

    def _move_aside_if_damaged(self) -> Path | None:
        try:
            with self._read() as db:
                if db is not None and db.execute("PRAGMA quick_check").fetchone() != ("ok",):
                    raise sqlite3.DatabaseError("database disk image is malformed")
        except RegistryLockedError:
            raise
        except RegistryError:
            aside = self.path.with_name(f"{DB_FILE}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            for path in (self.path, *self._sidecars()):
                try:
                    path.rename(f"{aside}{path.name[len(DB_FILE) :]}")
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    reason = f"damaged, and it cannot be moved aside: {exc.strerror}"
                    raise RegistryError(f"{self.path} is {reason}", reason) from None
            return aside
        return None


def _expected_columns() -> dict[str, list[str]]:
    """Each table's columns, as `_SCHEMA` describes them."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(_SCHEMA)
        return {
            t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")] for t in ("runs", "epochs")
        }
    finally:
        db.close()


_COLUMNS = _expected_columns()


def _check_schema(path: Path, db: sqlite3.Connection) -> bool:
    """Whether `db` holds the registry's tables (False: an empty database, no runs yet).
    RegistryError for a file of another schema: no runs table, or a table of ours lacking
    columns (other than those `_migrate` adds)."""
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return False
    if "runs" not in tables:
        _wrong_schema(path, "it has no runs table")
    added = {name for name, _ in _ADDED_COLUMNS}
    for table in tables & set(_COLUMNS):
        have = {r[1] for r in db.execute(f"PRAGMA table_info({table})")}
        missing = [c for c in _COLUMNS[table] if c not in have and c not in added]
        if missing:
            more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
            _wrong_schema(path, f"its {table} table lacks {', '.join(missing[:3])}{more}")
    return True


def _wrong_schema(path: Path, what: str) -> NoReturn:
    reason = f"not a runs registry of this version: {what}"
    raise RegistryError(f"{path} is {reason}; {REBUILD_HINT}", reason)


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
    return Path(path or os.environ.get(CHECKPOINTS_ENV) or "checkpoints")


def new_run_id(preset: str) -> str:
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in Path(preset).stem)[:40]
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}-{os.urandom(2).hex()}"


def create_run_dir(
    root: Path,
    preset: str,
    config_yaml: str,
    meta: dict[str, Any] | None = None,
    *,
    label: str | None = None,
) -> tuple[str, Path]:
    """Make `<root>/<run-id>/` holding the resolved `config.yaml` and `run.json` (preset name,
    its creation time in ns, plus `meta`: a sweep's run adds `sweep_id`, `recipe` and `seed`;
    a run edited in Setup `edited: true`). `label`: the id's name part when it is not the
    preset's (`quickstart-edited`). Two runs created at once get two folders: a taken id is
    drawn again."""
    root.mkdir(parents=True, exist_ok=True)
    while True:
        run_id = new_run_id(label or preset)
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
