"""The dashboard's torch-free pieces: run state from events, downsampling, colour scale,
half blocks, evaluation data, the registry's delete, the CLI's run lookup and TTY gate."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from rich.text import Text

from engine.events import EVENTS_FILE, Event, EventWriter, Failed, Step, parse_event
from engine.runs import RunRegistry
from tests.conftest import cli
from tests.tui.fixtures import RUN_ID, make_events, make_run, typed
from tui.fmt import memory_text, wait_text
from tui.orchestration.evaldata import load_eval, micro_curves, most_confused, row_normalise
from tui.orchestration.headless import HeadlessPrinter, follow
from tui.orchestration.runstate import RunState, downsample
from tui.orchestration.supervisor import supervise
from tui.screens.monitor import fit_line
from tui.widgets.confusion import intensity
from tui.widgets.preview import half_block_lines

ROOT = Path(__file__).resolve().parents[2]


def _parsed(event: dict) -> Event:
    """`event` through the log's JSON form, as the supervisor reads it."""
    parsed = parse_event(typed(event).to_json())
    assert parsed is not None
    return parsed


def _state(events: list[dict], run_dir: Path = Path("x")) -> RunState:
    state = RunState(run_dir)
    state.apply([_parsed(e) for e in events])
    return state


def test_run_state_builds_histories_and_progress_from_events():
    state = _state(make_events("r", 3, step_events=4))
    assert state.started is not None and state.status == "running"
    assert len(state.step_loss) == 12 and state.step_loss.xs[-1] == pytest.approx(3.0)
    assert state.train_loss.xs == [1.0, 2.0, 3.0] and len(state.val_top1) == 3
    assert state.progress() == (3, 3, 125, 125)
    assert state.img_per_s() == 133.0
    assert state.best()[1] == 3


def test_run_state_eta_is_the_step_rate_plus_the_evaluation_to_come():
    events = make_events("r", 4, step_events=2)[:3]  # run_started + 2 steps of epoch 1
    state = _state(events)
    done, epochs, step, spe = state.progress()
    assert (done, epochs, step) == (0, 4, 125)
    # training: 30 s for 125 of 500 steps -> 90 s left; evaluation before a validation pass
    # was timed reads 3 x 133 img/s: 4 validations of 1000 images and 2 test passes of 2000
    assert state.eta_s() == pytest.approx(90.0 + (4 * 1000 + 2 * 2000) / (3 * 133))


def test_run_state_times_evaluation_on_the_validation_pass():
    events = make_events("r", 2, step_events=2)
    end = next(i for i, e in enumerate(events) if e["type"] == "epoch_end")
    t_end = events[end]["t"]
    phase = dict(type="phase", t=t_end - 2.0, phase="validating", images=1000)
    started = dict(events[0])
    started["config"] = {"eval": {"test": True, "tta": ["id", "flip", "flip"]}}
    testing = dict(type="phase", t=t_end + 60, phase="testing", images=2000, detail="last")
    for best_epoch, passes in ((1, 1 + 2), (None, 1 + 2), (0, 1 + 1 + 2)):
        epoch_end = dict(events[end], t=t_end, best_epoch=best_epoch)
        state = _state([started, *events[1:end], phase, epoch_end, testing])
        assert state.eval_s_per_img == pytest.approx(2.0 / 1000)  # 1000 images in 2 s
        assert state.phase_name() == "testing last"
        # at the start of the last checkpoint's pass: it, 2 distinct TTA views, and the best
        # checkpoint's pass unless the last epoch is the best (one pass serves both)
        assert state.eval_left_s(now=t_end + 60) == pytest.approx(passes * 2000 * 0.002)


def test_resumed_event_cuts_history_after_the_checkpoint():
    events = make_events("r", 4, step_events=2)
    resumed = dict(events[0], type="resumed", t=events[-1]["t"] + 1, epoch=2, step=250)
    resumed.update(epoch_step=0, checkpoint="last.pt")
    state = _state([*events, resumed])
    assert state.train_loss.xs == [1.0, 2.0]
    assert max(state.step_loss.xs) <= 2.0
    assert state.resumed_from == "epoch 2, step 250"


def test_downsample_keeps_ends_and_bounds_the_point_count():
    xs = [float(x) for x in range(10_000)]
    ys = [2.0 * x for x in xs]
    dx, dy = downsample(xs, ys, 100)
    assert len(dx) <= 100 and dx[0] == 0 and dx[-1] == 9_999
    assert all(b > a for a, b in zip(dx, dx[1:], strict=False))
    assert np.allclose(np.array(dy), 2 * np.array(dx))  # bucket means of a line stay on it
    assert downsample([1.0, 2.0], [3.0, 4.0], 100) == ([1.0, 2.0], [3.0, 4.0])


def test_colour_scale_keeps_a_single_error_visible():
    pos = intensity(np.array([0.0, 0.001, 0.01, 0.05, 0.9, 1.0]))
    assert pos[0] == 0.0
    assert pos[1] >= 0.12 and pos[2] > pos[1] and pos[3] > 0.5 * pos[4]
    assert pos[-1] == 1.0 and np.all(np.diff(pos) > 0)


def test_half_block_lines_put_the_upper_pixel_in_fg_and_the_lower_in_bg():
    img = np.zeros((3, 2, 1), dtype=np.uint8)
    img[:, 0, 0] = (255, 0, 0)
    img[:, 1, 0] = (0, 0, 255)
    (line,) = half_block_lines(img)
    seg = line[0]
    assert seg.text == "▀"
    style = seg.style
    assert style is not None and style.color is not None and style.bgcolor is not None
    assert style.color.triplet == (255, 0, 0) and style.bgcolor.triplet == (0, 0, 255)


def test_eval_data_superclass_confusion_and_most_confused(tmp_path):
    run_dir = make_run(tmp_path)
    d = load_eval(run_dir)
    coarse = d.coarse_confusion()
    assert coarse.shape == (20, 20) and coarse.sum() == d.confusion.sum()
    assert np.trace(coarse) >= np.trace(d.confusion)
    pairs = most_confused(d.confusion, top=5)
    assert len(pairs) == 5 and all(p.true != p.pred for p in pairs)
    assert pairs[0].count == max(
        d.confusion[t, p] for t in range(100) for p in range(100) if t != p
    )
    assert np.allclose(row_normalise(d.confusion).sum(1), 1.0)


def test_micro_roc_matches_scikit_learn():
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(1)
    probs = rng.random((300, 5))
    labels = rng.integers(0, 5, 300)
    grid = np.linspace(0, 1, 101)
    _, roc = micro_curves(probs, labels, grid)
    onehot = np.eye(5, dtype=int)[labels]
    fpr, tpr, _ = roc_curve(onehot.ravel(), probs.ravel())
    assert np.allclose(roc, np.interp(grid, fpr, tpr), atol=0.02)


def test_supervise_follows_a_finished_log_to_its_end(tmp_path):
    run_dir = make_run(tmp_path)
    batches: list[list] = []
    code, final = supervise(run_dir, batches.append, poll_s=0.01)
    assert (code, final) == (None, True)
    assert batches[0][-1].type == "finished"


def test_attached_supervise_runs_while_the_lock_is_held_and_ends_once_it_is_free(tmp_path):
    """Attached (no process of ours), a log without a final event is followed while an engine
    holds the run's lock, and given up once none does (the engine died without a word)."""
    from engine.run_lock import RunLock

    run_dir = tmp_path / "r"
    run_dir.mkdir()
    EventWriter(run_dir / EVENTS_FILE).emit(Step(1, 1, 1, 2, 4, 4.6, 0.0, 0.1, 100.0))
    polls: list[int] = []

    def cancelled() -> bool:
        polls.append(1)
        return len(polls) > 30

    with RunLock(run_dir):
        code, final = supervise(run_dir, lambda _batch: None, cancelled=cancelled, poll_s=0.001)
        assert (code, final) == (None, False) and len(polls) > 30  # cancelled, never given up
    assert supervise(run_dir, lambda _batch: None, poll_s=0.001) == (None, False)


def test_registry_delete_removes_rows_and_folder(tmp_path):
    run_dir = make_run(tmp_path)
    registry = RunRegistry(tmp_path)
    assert registry.delete(RUN_ID)
    assert not run_dir.exists() and registry.runs() == [] and registry.epochs(RUN_ID) == []
    assert not registry.delete(RUN_ID)
    with pytest.raises(ValueError):
        registry.delete("../etc")


def test_attach_unknown_run_is_a_one_line_error(tmp_path):
    make_run(tmp_path)
    result = cli("attach", "no-such-run", checkpoints=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "unknown run 'no-such-run'" in result.stderr


def test_attach_without_a_terminal_exits_2_with_a_hint(tmp_path):
    make_run(tmp_path)
    result = cli("attach", "last", checkpoints=tmp_path)
    assert result.returncode == 2 and "no terminal" in result.stderr


def test_bare_command_without_a_terminal_exits_2_with_a_hint(tmp_path):
    result = cli(checkpoints=tmp_path)
    assert result.returncode == 2 and "--run PRESET" in result.stderr


def test_ui_package_imports_no_torch():
    modules = [
        p.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
        for p in (ROOT / "tui").rglob("*.py")
        if p.name != "__main__.py"
    ]
    code = "import sys\n" + "".join(f"import {m}\n" for m in modules)
    code += "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision'))\n"
    code += "print(' '.join(bad))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "tui.app" in code and out.stdout.strip() == ""


def test_input_wait_and_memory_read_from_steps_and_old_logs_without_them():
    events = make_events("r", 2, step_events=2)
    old = [{k: v for k, v in e.items() if k != "data_wait"} for e in events]  # an older log
    state = _state(old)
    assert state.data_wait is None and state.memory_mb is None
    last_step = max(i for i, e in enumerate(events) if e["type"] == "step")
    events[last_step] = dict(events[last_step], data_wait=0.25, memory_mb=10444.8)
    state = _state(events)
    assert state.data_wait == 0.25 and state.memory_mb == 10444.8
    later = dict(events[last_step], data_wait=None, memory_mb=None, t=events[-1]["t"] + 1)
    state.apply([_parsed(later)])
    assert state.data_wait == 0.25 and state.memory_mb == 10444.8  # None = not reported


def test_memory_and_wait_texts():
    assert [memory_text(m) for m in (None, 0.4, 812.0, 1024.0, 10444.8)] == [
        "-", "0 MiB", "812 MiB", "1.0 GiB", "10.2 GiB"
    ]  # fmt: skip
    assert [wait_text(w) for w in (None, 0.0, 0.004, 0.0051, 0.031, 1.0)] == [
        "-", "0%", "<1%", "1%", "3%", "100%"
    ]  # fmt: skip


def test_fit_line_drops_the_least_important_parts_to_fit():
    parts = [(0, Text("aaaa")), (2, Text("bb")), (1, Text("cc")), (2, Text("dd"))]
    assert fit_line(parts, 100).plain == "aaaa · bb · cc · dd"  # 19 cells
    assert fit_line(parts, 18).plain == "aaaa · bb · cc"  # equal ranks: the later one goes
    assert fit_line(parts, 9).plain == "aaaa · cc"
    assert fit_line(parts, 2).plain == "aaaa"  # rank 0 stays (the widget ellipsises it)


def _epoch_line(events: list) -> str:
    out = io.StringIO()
    printer = HeadlessPrinter(Console(file=out, width=200, force_terminal=False))
    for e in events:
        printer.handle(e)
    return next(x for x in out.getvalue().splitlines() if x.strip().startswith("1/1"))


def test_headless_printer_shows_input_wait_and_memory_when_reported():
    events = [typed(e) for e in make_events("r", 1, step_events=2)]
    assert _epoch_line(events).endswith("(e1)  input wait 3%")  # a CPU run: no memory figure

    for e in events:
        if isinstance(e, Step):
            e.data_wait = None
    assert _epoch_line(events).endswith("(e1)")  # an older log: nothing added
    last_step = [e for e in events if isinstance(e, Step)][-1]
    last_step.memory_mb = 2048.0  # as on a GPU
    assert _epoch_line(events).endswith("(e1)  mem 2.0 GiB")


def test_headless_follow_skips_an_unreadable_line_and_goes_on(tmp_path):
    """`--run` reads the log through the same loop as the Monitor: a line it cannot read (a
    newer writer's) is reported and skipped, and what follows is still shown."""
    log = tmp_path / EVENTS_FILE
    log.write_text('{"type": "step"}\n')  # a step without its fields

    class Engine:  # exits on its third poll, after writing its final event on the second
        def __init__(self) -> None:
            self.polls = 0
            self.returncode: int | None = None

        def poll(self) -> int | None:
            self.polls += 1
            if self.polls == 2:
                EventWriter(log).emit(Failed(status="bad_input", message="no such file"))
            if self.polls == 3:
                self.returncode = 2
            return self.returncode

    out = io.StringIO()
    printer = HeadlessPrinter(Console(file=out, width=200), run_dir=tmp_path)
    final = follow(tmp_path, Engine(), printer)
    assert isinstance(final, Failed) and printer.state.status == "bad_input"
    text = out.getvalue()
    assert f"warning: skipped line 1 of {log}: step event: lacks epoch" in text
    assert "run failed (bad_input)" in text
