"""A real run against a locked or damaged runs.sqlite: it trains to the end with one warning,
and the registry catches up (`cifar-tui runs`) or is rebuilt (`cifar-tui runs --rebuild`)."""

from __future__ import annotations

import json
import sqlite3

import pytest

from engine.runs import DB_FILE, STALE_FILE, RunRegistry
from tests.conftest import cli
from tests.engine.test_registry_damage import DAMAGE, record_run

pytestmark = pytest.mark.e2e  # starts engine processes or trains: see pyproject's markers

TINY = [
    *("--set", "model.name=wrn", "--set", "model.depth=10", "--set", "model.width=1"),
    *("--set", "data.subset=320", "--set", "data.val_size=100", "--set", "train.epochs=2"),
    *("--set", "eval.test=false"),
]


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("cifar-tui: warning:")]


def test_a_run_trains_to_the_end_while_another_process_holds_the_registry_locked(tmp_path):
    RunRegistry(tmp_path).forget("none")  # the registry exists, as after earlier runs
    holder = sqlite3.connect(tmp_path / DB_FILE)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = cli("--run", "quickstart", "--json", *TINY, checkpoints=tmp_path)
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    assert (tmp_path / run_id / "summary.json").is_file()
    (warning,) = _warnings(result.stderr)
    assert "locked" in warning and str(tmp_path / DB_FILE) in warning
    assert "Traceback" not in result.stderr
    assert (tmp_path / run_id / STALE_FILE).exists()
    listing = cli("runs", checkpoints=tmp_path)  # the lock is gone: the row catches up
    assert listing.returncode == 0, listing.stderr
    assert run_id in listing.stdout and "done" in listing.stdout
    assert [e["epoch"] for e in RunRegistry(tmp_path).epochs(run_id)] == [1, 2]
    assert not (tmp_path / run_id / STALE_FILE).exists()


def test_a_damaged_registry_warns_the_run_refuses_readers_and_is_rebuilt(tmp_path):
    DAMAGE["garbage"](tmp_path, tmp_path / DB_FILE)
    damaged = (tmp_path / DB_FILE).read_bytes()
    result = cli("--run", "quickstart", "--json", *TINY, checkpoints=tmp_path)
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    (warning,) = _warnings(result.stderr)
    assert "file is not a database" in warning
    assert (tmp_path / DB_FILE).read_bytes() == damaged  # the engine leaves it as it is

    listing = cli("runs", checkpoints=tmp_path)
    assert listing.returncode == 2 and listing.stdout == ""
    assert listing.stderr.strip().splitlines() == [
        f"cifar-tui: error: cannot read the runs registry {tmp_path / DB_FILE}: file is not a "
        "database; rebuild it from the run folders with `cifar-tui runs --rebuild`"
    ]

    rebuilt = cli("runs", "--rebuild", checkpoints=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    (aside,) = tmp_path.glob(f"{DB_FILE}.damaged-*")
    assert aside.read_bytes() == damaged
    assert rebuilt.stderr.splitlines() == [
        f"the damaged registry was kept aside as {aside}",
        f"rebuilt {tmp_path / DB_FILE} from the event logs: rows for 1 of the run folders (1; a "
        "folder whose engine never started has none)",
    ]
    assert run_id in rebuilt.stdout and "done" in rebuilt.stdout
    (row,) = RunRegistry(tmp_path).runs()
    assert (row.status, row.epochs_done, row.best_epoch is not None) == ("done", 2, True)


def test_run_folders_without_a_registry_point_to_rebuild(tmp_path):
    record_run(tmp_path)  # events only: no registry followed them
    listing = cli("runs", checkpoints=tmp_path)
    assert listing.returncode == 0 and not (tmp_path / DB_FILE).exists()
    assert f"no runs registry in {tmp_path}, though it holds run folders (1): cifar-tui runs" in (
        listing.stdout
    )
