"""Damaged run files on the command line: one line on stderr naming the file, exit 2, nothing
written; a damaged derived file (summary.json) is only a warning where the record stands in."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import cli
from tests.tui.fixtures import make_run


def _snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _one_line_refusal(args: list[str], root: Path, expected: str) -> None:
    before = _snapshot(root)
    result = cli(*args, checkpoints=root, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert lines == [f"cifar-tui: error: {expected}"], result.stderr
    assert _snapshot(root) == before, "something was written"


@pytest.mark.parametrize(
    ("text", "damage"),
    [
        ("garbage", "not valid JSON"),
        ("[]", "it holds a list, not an object"),
        ("{}", "no run_id or preset (a string)"),
        ('{"preset": "quickstart"}', "no run_id (a string)"),
    ],
)
def test_resume_refuses_a_damaged_run_json(tmp_path: Path, text: str, damage: str) -> None:
    root = tmp_path / "ck"
    run_dir = make_run(root, finished=False)
    (run_dir / "run.json").write_text(text)
    expected = f"{run_dir / 'run.json'} is damaged: {damage}"
    _one_line_refusal(["--resume", run_dir.name], root, expected)


@pytest.mark.parametrize("log", ["empty", "deleted"])
def test_attach_to_a_run_with_no_events_and_no_engine_says_so(tmp_path: Path, log: str) -> None:
    root = tmp_path / "ck"
    run_dir = make_run(root, finished=False)
    events = run_dir / "events.jsonl"
    if log == "empty":
        events.write_text("")
    else:
        events.unlink()
    expected = (
        f"no events in {events} and no engine holds the run; it never started or its log was "
        "deleted"
    )
    _one_line_refusal(["attach", run_dir.name], root, expected)


def test_runs_lists_a_run_with_damaged_summary_and_run_json(tmp_path: Path) -> None:
    root = tmp_path / "ck"
    run_dir = make_run(root)
    (run_dir / "summary.json").write_text("[1, 2]")
    (run_dir / "run.json").write_text("{}")
    for args in (["runs"], ["runs", "--export", "json"]):
        result = cli(*args, checkpoints=root, timeout=120)
        assert result.returncode == 0, result.stderr
        assert run_dir.name in result.stdout and "Traceback" not in result.stderr
