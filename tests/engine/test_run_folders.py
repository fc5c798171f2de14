"""Run folders: ids that cannot collide, `last` as the newest run by creation time, and a run
refused for bad input before it trained never taken for `last`."""

from __future__ import annotations

import json

from engine import runs
from engine.events import EventWriter, Failed
from engine.runs import create_run_dir, find_run, run_ids


def _set_created(run_dir, ns: int) -> None:
    meta = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**meta, "created_ns": ns}))


def test_two_runs_of_the_same_second_are_ordered_by_creation_not_by_name(tmp_path):
    """Ids carry the time to the second and a random tail: by name, the newer of two runs
    started in one second is the older one half of the time."""
    a_id, a = create_run_dir(tmp_path, "p", "{}\n")
    b_id, b = create_run_dir(tmp_path, "p", "{}\n")
    older, newer = sorted([a, b], key=lambda p: p.name, reverse=True)  # names in reverse
    _set_created(older, 1_000)
    _set_created(newer, 2_000)
    assert run_ids(tmp_path) == [older.name, newer.name]
    assert find_run(tmp_path, "last") == newer


def test_run_ids_cannot_collide(tmp_path, monkeypatch):
    """A drawn id that is taken already is drawn again, not a FileExistsError traceback."""
    draws = iter(["20260101-000000-p-aaaa", "20260101-000000-p-aaaa", "20260101-000000-p-bbbb"])
    monkeypatch.setattr(runs, "new_run_id", lambda preset: next(draws))
    first, _ = create_run_dir(tmp_path, "p", "{}\n")
    second, _ = create_run_dir(tmp_path, "p", "{}\n")
    assert (first, second) == ("20260101-000000-p-aaaa", "20260101-000000-p-bbbb")


def test_a_run_refused_for_bad_input_is_never_last(tmp_path):
    """`--device cuda` without CUDA (caught by the engine only) leaves a folder marked with a
    `failed` bad_input event and no checkpoint: `last` still names the real last run."""
    _, real = create_run_dir(tmp_path, "p", "{}\n")
    _, refused = create_run_dir(tmp_path, "p", "{}\n")
    _set_created(real, 1_000)
    _set_created(refused, 2_000)
    writer = EventWriter(refused / "events.jsonl")
    writer.emit(Failed(status="bad_input", message="train.device = cuda but no CUDA device"))
    writer.close()
    assert find_run(tmp_path, "last") == real
    assert find_run(tmp_path, refused.name) == refused  # still reachable by its id
    (refused / "last.pt").write_bytes(b"")  # one that trained a while is a run to resume
    assert find_run(tmp_path, "last") == refused
