"""Damaged run files, read by the engine's torch-free readers: the event log (one bad line is
skipped and said, the others read), summary.json (the finished event stands in) and run.json
(one error naming the file)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import BadInputError, RunMetaError
from engine.events import BadEvent, EventTail, Finished, Step, last_event, parse_event, read_events
from engine.outcome import SummaryError, read_outcome, read_summary
from engine.runs import create_run_dir, read_run_meta
from tests.conftest import ROOT

STEP = Step(1, 1, 1, 2, 2, 4.6, 0.0, 0.1, 100.0)
SUMMARY = {"run_id": "r", "status": "done", "epochs_done": 1, "test_top1": 0.25}


def _log(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"type": "epoch_end", "epoch": 3}', "epoch_end event: lacks epochs, train_loss"),
        (
            STEP.to_json().replace('"loss": 4.6', '"loss": "high"'),
            'step event: loss = "high" is not a number',
        ),
        (STEP.to_json().replace('"epoch": 1', '"epoch": true'), "epoch = true is not an integer"),
        ('{"type": "finished", "status": "won", "summary": {}}', 'status "won" is not one of'),
        ('{"type": "finished", "status": "done", "summary": []}', "summary = [] is not an object"),
        ("[1, 2]", "not an event"),
        ('{"epoch": 3}', "not an event"),
        ("garbage", "not valid JSON"),
        ("[" * 100_000, "not valid JSON"),
    ],
)
def test_a_bad_line_is_a_bad_event_naming_what_is_wrong(line: str, reason: str) -> None:
    with pytest.raises(BadEvent) as caught:
        parse_event(line)
    assert reason in str(caught.value)


def test_a_tail_skips_only_the_bad_line_and_says_which(tmp_path: Path) -> None:
    good = [STEP.to_json()] * 104
    log = _log(
        tmp_path / "events.jsonl", *good[:50], '{"type": "epoch_end", "epoch": 3}', *good[50:]
    )
    tail = EventTail(log)
    assert len(tail.poll()) == 104
    warning = tail.take_warning()
    assert warning is not None and warning.startswith(f"skipped line 51 of {log}: epoch_end")
    assert tail.take_warning() is None  # said once
    assert len(read_events(log)) == 104


def test_line_numbers_count_from_the_start_of_the_log_whatever_the_offset(tmp_path: Path) -> None:
    log = _log(tmp_path / "events.jsonl", STEP.to_json(), STEP.to_json())
    tail = EventTail(log, offset=log.stat().st_size)
    with log.open("a") as f:
        f.write("garbage\n" + STEP.to_json() + "\n{}\n")
    assert len(tail.poll()) == 1
    assert tail.take_warning() == (
        f"skipped 2 bad lines of {log}, the first line 3: not valid JSON"
    )


def test_the_last_event_is_the_last_good_one(tmp_path: Path) -> None:
    log = _log(
        tmp_path / "events.jsonl",
        Finished(status="done", summary=SUMMARY).to_json(),
        '{"type": "finished", "status": 7, "summary": {}}',
    )
    last = last_event(log)
    assert isinstance(last, Finished) and last.status == "done"
    assert read_outcome(tmp_path).status == "done"


def _finished_run(tmp_path: Path, summary_json: str | None) -> Path:
    _log(tmp_path / "events.jsonl", STEP.to_json(), Finished("done", SUMMARY).to_json())
    if summary_json is not None:
        (tmp_path / "summary.json").write_text(summary_json)
    return tmp_path


@pytest.mark.parametrize(
    ("text", "damage"),
    [
        ("[1, 2]", "it holds a list, not an object"),
        ("{}", "lacks status"),
        ('{"status": "done", "test_top1": "high"}', 'test_top1 = "high" is not a number or null'),
        ('{"status": "maybe"}', "status 'maybe' is not one of done, interrupted, diverged"),
        ("garbage", "not valid JSON"),
        ("", "not valid JSON"),
    ],
)
def test_a_damaged_summary_json_gives_way_to_the_finished_event(
    tmp_path: Path, text: str, damage: str
) -> None:
    run_dir = _finished_run(tmp_path, text)
    warnings: list[str] = []
    summary = read_summary(run_dir, warnings.append)
    assert summary is not None and summary.test_top1 == 0.25 and summary.run_id == "r"
    path, events = run_dir / "summary.json", run_dir / "events.jsonl"
    assert warnings == [
        f"{path} is damaged ({damage}); its summary is read from the finished event in {events}"
    ]


def test_a_good_summary_json_is_read_without_a_word(tmp_path: Path) -> None:
    warnings: list[str] = []
    run_dir = _finished_run(tmp_path, json.dumps({**SUMMARY, "test_top1": 0.5}))
    summary = read_summary(run_dir, warnings.append)
    assert summary is not None and summary.test_top1 == 0.5 and warnings == []


def test_a_damaged_summary_with_no_usable_event_is_one_error_naming_the_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "summary.json").write_text("[]")
    with pytest.raises(SummaryError, match="summary.json is damaged .* has no finished event"):
        read_summary(tmp_path)
    _log(tmp_path / "events.jsonl", '{"type": "finished", "status": "done", "summary": {}}')
    with pytest.raises(SummaryError) as caught:
        read_summary(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path / 'summary.json'} is damaged (it holds a list, not an object) and the "
        f"finished event in {tmp_path / 'events.jsonl'} is damaged: lacks status"
    )
    (tmp_path / "summary.json").unlink()
    with pytest.raises(SummaryError, match="^the finished event in .* is damaged: lacks status$"):
        read_summary(tmp_path)


def test_no_summary_and_no_finished_event_is_none(tmp_path: Path) -> None:
    _log(tmp_path / "events.jsonl", STEP.to_json())
    assert read_summary(tmp_path) is None


@pytest.mark.parametrize(
    ("text", "damage"),
    [
        ("garbage", "not valid JSON"),
        ("[1]", "it holds a list, not an object"),
        ("{}", "no run_id or preset (a string)"),
        ('{"preset": "quickstart"}', "no run_id (a string)"),
        ('{"run_id": 7, "preset": "quickstart"}', "no run_id (a string)"),
    ],
)
def test_a_damaged_run_json_is_one_error_naming_the_file(
    tmp_path: Path, text: str, damage: str
) -> None:
    _, run_dir = create_run_dir(tmp_path, "quickstart", "{}\n")
    (run_dir / "run.json").write_text(text)
    with pytest.raises(RunMetaError) as caught:
        read_run_meta(run_dir)
    assert str(caught.value) == f"{run_dir / 'run.json'} is damaged: {damage}"
    assert isinstance(caught.value, BadInputError) and isinstance(caught.value, ValueError)


def test_the_engine_refuses_a_damaged_run_json_in_one_line_writing_nothing(tmp_path: Path) -> None:
    _, run_dir = create_run_dir(tmp_path, "quickstart", "{}\n")
    (run_dir / "run.json").write_text("[]")
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    result = subprocess.run(
        [sys.executable, "-m", "engine", "run", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"cifar-tui: error: {run_dir / 'run.json'} is damaged: it holds a list, not an object"
    ]
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
