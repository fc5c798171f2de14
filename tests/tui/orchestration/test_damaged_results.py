"""A damaged eval.npz is one EvalDataError naming the file and what is wrong; a damaged summary is
a warning beside the results, and a sweep's table leaves that run's result out with a warning."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.tui.fixtures import make_run
from tui.orchestration.evaldata import EvalDataError, load_eval
from tui.orchestration.sweep import sweep_results
from tui.orchestration.sweep.state import state_path


def _arrays(run_dir: Path) -> dict[str, np.ndarray]:
    with np.load(run_dir / "eval.npz") as z:
        return {k: z[k] for k in z.files}


def _resave(run_dir: Path, **changes: np.ndarray | None) -> bytes:
    arrays = {k: v for k, v in (_arrays(run_dir) | changes).items() if v is not None}
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def _foreign_zip(_run_dir: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "not an evaluation")
    return buf.getvalue()


def _single_array(_run_dir: Path) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.arange(3))
    return buf.getvalue()


CASES = [
    ("empty", lambda d: b"", "empty"),
    ("truncated", lambda d: (d / "eval.npz").read_bytes()[:5000], "truncated zip, or not a zip"),
    ("pickle", lambda d: b"\x80\x04not numpy", "not an .npz archive: pickled data, refused"),
    ("single array", _single_array, "a single array, not an .npz archive"),
    ("foreign zip", _foreign_zip, "not a cifar-tui evaluation: no confusion, class_names"),
    (
        "labels out of range",
        lambda d: _resave(d, labels=np.full(2000, 100)),
        "labels holds values outside [0, 100)",
    ),
    (
        "negative labels",
        lambda d: _resave(d, labels=np.full(2000, -1)),
        "labels holds values outside [0, 100)",
    ),
    (
        "superclass out of range",
        lambda d: _resave(d, fine_to_coarse=np.full(100, 20)),
        "fine_to_coarse holds values outside [0, 20)",
    ),
    (
        "confusion not square",
        lambda d: _resave(d, confusion=np.zeros((100, 99), dtype=np.int64)),
        "confusion is (100, 99), not a square matrix",
    ),
    (
        "ap of the wrong length",
        lambda d: _resave(d, ap=np.zeros(7)),
        "ap is (7,), not (100,) for 100 classes",
    ),
    (
        "names for numbers",
        lambda d: _resave(d, auc=np.array(["x"] * 100)),
        "auc holds <U1, not numbers",
    ),
]


@pytest.mark.parametrize(("name", "build", "reason"), CASES, ids=[c[0] for c in CASES])
def test_a_damaged_eval_npz_is_one_error_naming_the_file(tmp_path, name, build, reason) -> None:
    run_dir = make_run(tmp_path)
    data = build(run_dir)
    (run_dir / "eval.npz").write_bytes(data)
    with pytest.raises(EvalDataError) as caught:
        load_eval(run_dir)
    path = run_dir / "eval.npz"
    assert str(caught.value).startswith(f"eval.npz is damaged ({reason}")
    assert str(caught.value).endswith(f"): {path}") and caught.value.path == path


def test_a_missing_eval_npz_is_said_too(tmp_path: Path) -> None:
    run_dir = make_run(tmp_path)
    (run_dir / "eval.npz").unlink()
    with pytest.raises(EvalDataError, match="missing: the run has no test results"):
        load_eval(run_dir)


@pytest.mark.parametrize("text", ["[1, 2]", "{}", "garbage", '{"status": "done", "epochs": "x"}'])
def test_a_damaged_summary_json_leaves_the_results_and_a_warning(tmp_path, text) -> None:
    run_dir = make_run(tmp_path)
    (run_dir / "summary.json").write_text(text)
    data = load_eval(run_dir)
    assert data.summary.run_id == run_dir.name and data.summary.test_top1 is not None
    (warning,) = data.warnings
    assert warning.startswith(f"{run_dir / 'summary.json'} is damaged (")


def test_an_unusable_summary_leaves_the_matrix_with_the_error_as_a_warning(tmp_path) -> None:
    run_dir = make_run(tmp_path)
    (run_dir / "summary.json").write_text("[]")
    (run_dir / "events.jsonl").write_text("")
    data = load_eval(run_dir)
    assert data.summary.run_id == run_dir.name and data.confusion.shape == (100, 100)
    assert data.warnings == [
        f"{run_dir / 'summary.json'} is damaged (it holds a list, not an object) and "
        f"{run_dir / 'events.jsonl'} has no finished event"
    ]


def test_a_sweep_table_warns_of_a_damaged_summary_and_goes_on(tmp_path: Path) -> None:
    good, bad = make_run(tmp_path, run_id="r-good"), make_run(tmp_path, run_id="r-bad")
    (bad / "summary.json").write_text('"garbage"')
    (bad / "events.jsonl").write_text("")
    runs = [{"recipe": "a", "seed": s, "run_id": d.name} for s, d in enumerate((good, bad))]
    state = state_path(tmp_path, "sw")
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"name": "sw", "runs": runs}))
    warnings: list[str] = []
    _, results = sweep_results(tmp_path, "sw", warnings.append)
    assert [r.summary is not None for r in results] == [True, False]
    assert warnings == [
        f"{bad / 'summary.json'} is damaged (it holds a string, not an object) and "
        f"{bad / 'events.jsonl'} has no finished event"
    ]
