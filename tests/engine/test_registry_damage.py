"""The runs registry is derived from the event logs: a damaged, locked or read-only runs.sqlite
never stops a run, readers name the file in one error and never change it, and
`RunRegistry.rebuild` writes it again from the run folders."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from engine import runs
from engine.events import EpochEnd, Finished
from engine.outcome import SUMMARY_FILE
from engine.runs import (
    DB_FILE,
    STALE_FILE,
    RegistryError,
    RegistryLockedError,
    RunRegistry,
    create_run_dir,
)
from engine.sinks import RunRecorder, run_sinks
from tests.engine.test_outcome import STARTED


def _epoch(n: int) -> EpochEnd:
    return EpochEnd(
        epoch=n,
        epochs=2,
        train_loss=2.0 / n,
        train_top1=0.1 * n,
        val_loss=1.9 / n,
        val_top1=0.2 * n,
        val_top5=0.5,
        lr=0.1,
        epoch_s=1.0,
        img_per_s=10.0,
        best_val_top1=0.2 * n,
        best_epoch=n,
        eta_s=0.0,
    )


def record_run(root: Path, registry: RunRegistry | None = None) -> str:
    """A finished two-epoch run's events, followed by the sinks (of `registry`, if given)."""
    run_id, run_dir = create_run_dir(root, "p", "{}\n", {})
    recorder = RunRecorder(run_dir / "events.jsonl", run_sinks(run_dir, registry))
    for event in (STARTED, _epoch(1), _epoch(2)):
        recorder.emit(event)
    recorder.emit(
        Finished(status="done", summary={"status": "done", "test_top1": 0.3, "wall_s": 2.0})
    )
    recorder.close()
    return run_id


def _real_db_bytes(tmp: Path) -> bytes:
    record_run(tmp / "real", RunRegistry(tmp / "real"))
    return (tmp / "real" / DB_FILE).read_bytes()


def _other_schema(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE runs (name TEXT, score REAL)")
    db.commit()
    db.close()


def _not_ours(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE photos (id INTEGER)")
    db.commit()
    db.close()


DAMAGE = {
    "garbage": lambda tmp, path: path.write_bytes(b"not a database at all\n" * 50),
    "truncated": lambda tmp, path: path.write_bytes(_real_db_bytes(tmp)[:100]),
    "other schema": lambda tmp, path: _other_schema(path),
    "no runs table": lambda tmp, path: _not_ours(path),
}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_registry_is_named_in_one_error_and_left_as_it_is(tmp_path, damage):
    root = tmp_path / "ck"
    root.mkdir()
    DAMAGE[damage](tmp_path, root / DB_FILE)
    before = _snapshot(root)
    for read in (lambda r: r.runs(), lambda r: r.epochs("r")):
        with pytest.raises(RegistryError) as caught:
            read(RunRegistry(root))
        message = str(caught.value)
        assert str(root / DB_FILE) in message and "cifar-tui runs --rebuild" in message
        assert "\n" not in message
    assert _snapshot(root) == before


def test_an_empty_or_missing_registry_has_no_runs_and_a_reader_creates_nothing(tmp_path):
    assert RunRegistry(tmp_path).runs() == [] and RunRegistry(tmp_path).epochs("r") == []
    assert list(tmp_path.iterdir()) == []
    (tmp_path / DB_FILE).touch()  # zero bytes: a database with no tables yet
    assert RunRegistry(tmp_path).runs() == []
    assert _snapshot(tmp_path) == {DB_FILE: b""}


def test_a_reader_of_a_registry_before_sweeps_needs_no_migration(tmp_path):
    db = sqlite3.connect(tmp_path / DB_FILE)
    columns = ", ".join(c for c in runs._COLUMNS["runs"] if c != "sweep_id")
    db.execute(f"CREATE TABLE runs ({columns})")
    db.execute(
        "INSERT INTO runs (run_id, preset, dataset, model, status, config, started, heartbeat,"
        " epochs_done) VALUES ('old', 'p', 'synthetic', 'm', 'done', '{}', 1, 1, 3)"
    )
    db.commit()
    db.close()
    before = _snapshot(tmp_path)
    (row,) = RunRegistry(tmp_path).runs()
    assert (row.run_id, row.epochs_done, row.sweep_id) == ("old", 3, None)
    assert _snapshot(tmp_path) == before  # migrating is the writer's job


def test_a_folder_nobody_may_write_is_read_immutable(tmp_path, monkeypatch):
    run_id = record_run(tmp_path, RunRegistry(tmp_path))
    for extra in ("-wal", "-shm"):
        assert not Path(f"{tmp_path / DB_FILE}{extra}").exists()  # the writer cleaned up
    real_access = os.access
    monkeypatch.setattr(runs.os, "access", lambda p, mode: mode != os.W_OK and real_access(p, mode))
    (row,) = RunRegistry(tmp_path).runs()
    assert row.run_id == run_id and len(RunRegistry(tmp_path).epochs(run_id)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([DB_FILE, run_id])


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through a read-only folder's mode")
def test_runs_are_listed_from_a_read_only_folder(tmp_path):
    root = tmp_path / "ck"
    run_id = record_run(root, RunRegistry(root))
    root.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        (row,) = RunRegistry(root).runs()
        assert row.run_id == run_id and row.status == "done"
    finally:
        root.chmod(stat.S_IRWXU)


@pytest.mark.parametrize("damage", ["garbage", "other schema"])
def test_a_failing_registry_costs_a_run_one_warning_and_is_repaired_later(tmp_path, capsys, damage):
    DAMAGE[damage](tmp_path, tmp_path / DB_FILE)
    before = (tmp_path / DB_FILE).read_bytes()
    run_id = record_run(tmp_path, RunRegistry(tmp_path))
    run_dir = tmp_path / run_id
    assert (run_dir / SUMMARY_FILE).is_file() and (run_dir / "card.json").is_file()
    warnings = capsys.readouterr().err.strip().splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("cifar-tui: warning: ")
    assert str(tmp_path / DB_FILE) in warnings[0] and run_id in warnings[0]
    assert (tmp_path / DB_FILE).read_bytes() == before and (run_dir / STALE_FILE).exists()
    (tmp_path / DB_FILE).unlink()  # the damaged file deleted: a reader creates nothing ...
    assert RunRegistry(tmp_path).runs() == [] and not (tmp_path / DB_FILE).exists()
    RunRegistry(tmp_path).forget("nothing")  # ... a writer does; then a reader catches it up
    (row,) = RunRegistry(tmp_path).runs()
    assert (row.run_id, row.status, row.epochs_done, row.test_top1) == (run_id, "done", 2, 0.3)
    assert len(RunRegistry(tmp_path).epochs(run_id)) == 2
    assert not (run_dir / STALE_FILE).exists()


def test_a_locked_registry_is_caught_up_by_the_run_at_its_next_event(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runs, "WRITE_TIMEOUT_S", 0.05)
    registry = RunRegistry(tmp_path)
    registry.forget("nothing")  # the file exists (WAL)
    run_id, run_dir = create_run_dir(tmp_path, "p", "{}\n", {})
    recorder = RunRecorder(run_dir / "events.jsonl", run_sinks(run_dir, registry))
    holder = sqlite3.connect(tmp_path / DB_FILE)
    holder.execute("BEGIN EXCLUSIVE")
    recorder.emit(STARTED)
    recorder.emit(_epoch(1))
    assert RunRegistry(tmp_path).runs() == []  # WAL: readable, and not written yet
    holder.rollback()
    holder.close()
    recorder.emit(_epoch(2))
    recorder.close()
    assert not (run_dir / STALE_FILE).exists()
    assert [e["epoch"] for e in RunRegistry(tmp_path).epochs(run_id)] == [1, 2]
    (warning,) = capsys.readouterr().err.strip().splitlines()
    assert warning == (
        f"cifar-tui: warning: the runs registry {tmp_path / DB_FILE} was not updated (another "
        f"process holds it locked); training goes on, and run {run_id}'s row is repaired from "
        "its events later (or: cifar-tui runs --rebuild)"
    )


def test_a_registry_locked_against_readers_is_one_error_and_rebuild_refuses(tmp_path, monkeypatch):
    """A rollback-journal file (as `sqlite3 runs.sqlite 'BEGIN EXCLUSIVE;'` makes one) whose
    lock another process holds: readers wait, then say so; it is not damaged."""
    monkeypatch.setattr(runs, "READ_TIMEOUT_S", 0.05)
    monkeypatch.setattr(runs, "WRITE_TIMEOUT_S", 0.05)
    holder = sqlite3.connect(tmp_path / DB_FILE)
    holder.execute("CREATE TABLE runs (run_id TEXT)")
    holder.commit()
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for act in (lambda r: r.runs(), lambda r: r.rebuild()):
            with pytest.raises(RegistryLockedError, match="holds it locked; try again$"):
                act(RunRegistry(tmp_path))
    finally:
        holder.rollback()
        holder.close()
    assert not list(tmp_path.glob(f"{DB_FILE}.damaged-*"))


def test_rebuild_writes_the_rows_the_sinks_wrote(tmp_path):
    """One description of a row: replaying the logs gives back what the live sinks wrote."""
    registry = RunRegistry(tmp_path)
    ids = [record_run(tmp_path, registry) for _ in range(2)]
    rows, epochs = registry.runs(), [registry.epochs(i) for i in ids]
    assert RunRegistry(tmp_path).rebuild() == (2, None)
    assert registry.runs() == rows and [registry.epochs(i) for i in ids] == epochs


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_rebuild_keeps_a_damaged_registry_aside(tmp_path, damage):
    run_id = record_run(tmp_path)  # events only: no registry followed them
    DAMAGE[damage](tmp_path / "scratch", tmp_path / DB_FILE)
    damaged = (tmp_path / DB_FILE).read_bytes()
    count, aside = RunRegistry(tmp_path).rebuild()
    assert count == 1 and aside is not None and aside.read_bytes() == damaged
    assert aside.name.startswith(f"{DB_FILE}.damaged-")
    (row,) = RunRegistry(tmp_path).runs()
    assert (row.run_id, row.status, row.epochs_done) == (run_id, "done", 2)


def test_rebuild_that_cannot_move_a_damaged_file_aside_says_so_and_changes_nothing(
    tmp_path, monkeypatch
):
    record_run(tmp_path)
    DAMAGE["garbage"](tmp_path, tmp_path / DB_FILE)
    before = _snapshot(tmp_path)

    def refuse(self: Path, target: object) -> Path:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "rename", refuse)  # a folder this user may not write
    with pytest.raises(RegistryError) as caught:
        RunRegistry(tmp_path).rebuild()
    assert str(caught.value) == (
        f"{tmp_path / DB_FILE} is damaged, and it cannot be moved aside: Permission denied"
    )
    assert _snapshot(tmp_path) == before
