"""Error analysis: the test images behind a Results number (tui.orchestration.error_analysis,
tui.screens.error_images), their pixels against the CIFAR-100 test file, the top losses against
brute force, `cifar-tui eval RUN --top-losses K`, and eval.npz files written before predictions."""

from __future__ import annotations

import asyncio
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from textual.widgets import Static
from typer.testing import CliRunner

from tests.conftest import real_cifar_or_skip
from tests.tui.conftest import wait_for
from tests.tui.fixtures import write_eval
from tui.app import CifarApp
from tui.orchestration import error_analysis as ea
from tui.orchestration.evaldata import EvalDataError, load_eval, most_confused
from tui.screens.error_images import ErrorImagesScreen
from tui.screens.results import TOP_LOSSES, ResultsScreen
from tui.widgets.image_tiles import GAP, ImageTiles

NAMES = [f"class-{k:03d}" for k in range(100)]


def _arrays(tmp_path: Path, **kwargs: Any) -> dict[str, Any]:
    write_eval(tmp_path, **kwargs)
    with np.load(tmp_path / "eval.npz") as z:
        return {k: z[k] for k in z.files}


def _brute_top_losses(p: ea.Predictions, count: int) -> list[int]:
    wrong = [i for i in range(len(p)) if p.pred[i] != p.labels[i]]
    return sorted(wrong, key=lambda i: (-p.losses[i], p.index[i]))[:count]


def test_selections_and_top_losses_match_brute_force(tmp_path: Path):
    arrays = _arrays(tmp_path)
    p = ea.predictions_of(arrays)
    assert p is not None and not p.derived
    probs = arrays["probs"].astype(np.float64)
    true_p = probs[np.arange(len(p)), p.labels]
    np.testing.assert_allclose(p.losses, -np.log(true_p), rtol=2e-3)  # the loss is -log p(true)
    confident = sorted(range(len(p)), key=lambda i: (-p.confidence[i], p.index[i]))
    f2c = arrays["fine_to_coarse"]
    checks = [
        (ea.cell(p, NAMES, 3, 7), lambda i: p.labels[i] == 3 and p.pred[i] == 7),
        (ea.cell(p, NAMES, 5, 5), lambda i: p.labels[i] == 5 and p.pred[i] == 5),
        (ea.false_positives(p, NAMES, 4), lambda i: p.pred[i] == 4 and p.labels[i] != 4),
        (ea.false_negatives(p, NAMES, 4), lambda i: p.labels[i] == 4 and p.pred[i] != 4),
        (
            ea.superclass_cell(p, [f"g{j}" for j in range(20)], f2c, 2, 2),
            lambda i: f2c[p.labels[i]] == 2 and f2c[p.pred[i]] == 2,
        ),
    ]
    for selection, member in checks:
        assert selection.rows.tolist() == [i for i in confident if member(i)], selection.title
    # the confusion matrix counts the same images
    assert len(ea.cell(p, NAMES, 3, 7).rows) == arrays["confusion"][3, 7]
    assert ea.top_losses(p, 25).rows.tolist() == _brute_top_losses(p, 25)
    low_first = ea.by_confidence(p, ea.cell(p, NAMES, 5, 5).rows, highest_first=False)
    assert np.all(np.diff(p.confidence[low_first]) >= 0)
    empty = ea.cell(p, NAMES, 0, 99)
    assert len(empty.rows) == 0 and "no test image of class-000" in empty.empty


def test_an_eval_file_from_before_predictions_derives_them_from_probs(tmp_path: Path):
    new, old = tmp_path / "new", tmp_path / "old"
    new.mkdir()
    old.mkdir()
    a, b = ea.predictions_of(_arrays(new)), ea.predictions_of(_arrays(old, predictions=False))
    assert a is not None and b is not None and b.derived and not a.derived
    np.testing.assert_array_equal(a.pred, b.pred)
    np.testing.assert_allclose(a.top5_probs, b.top5_probs, atol=1e-3)  # float16 probabilities
    np.testing.assert_allclose(a.losses, b.losses, rtol=2e-3, atol=1e-3)
    arrays = _arrays(old, predictions=False)
    del arrays["probs"]
    assert ea.predictions_of(arrays) is None


def test_damaged_predictions_name_the_file(tmp_path: Path):
    arrays = _arrays(tmp_path)
    arrays["top5_classes"] = arrays["top5_classes"][:, :3]
    np.savez(tmp_path / "eval.npz", **arrays)
    with pytest.raises(EvalDataError, match="top5_classes is .* not") as err:
        load_eval(tmp_path)
    assert str(tmp_path / "eval.npz") in str(err.value)


def _real_run(root: Path, data_dir: Path) -> Path:
    run = root / "20260101-120000-real-0001"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"run_id": run.name, "preset": "quickstart"}))
    (run / "config.yaml").write_text(f"data: {{dataset: cifar100, data_dir: '{data_dir}'}}\n")
    write_eval(run, per_class=100, images=False)  # 10 000 predictions, images read from the file
    return run


def _tile_pixels(tiles: ImageTiles, width: int, tile: int) -> np.ndarray:
    """uint8 [3, 32, 32] decoded from the colours of the half-block cells tiles[tile] is drawn
    with: `▀`'s foreground is the upper pixel, its background the lower one."""
    console = Console(width=width, color_system="truecolor", force_terminal=True)
    lines = console.render_lines(tiles, console.options.update_width(width), pad=False)
    per_row = tiles.per_row(width)
    captions = max(len(c) for c in tiles.captions)
    band = captions + 16 + 1  # captions, 16 lines of pictures, a blank line
    top = (tile // per_row) * band + captions
    left = (tile % per_row) * (32 + GAP)
    out = np.zeros((3, 32, 32), dtype=np.uint8)
    for y, line in enumerate(lines[top : top + 16]):
        cells = [(ch, seg.style) for seg in line for ch in seg.text]
        for x in range(32):
            ch, style = cells[left + x]
            assert ch == "▀" and style is not None
            assert style.color is not None and style.bgcolor is not None
            out[:, 2 * y, x] = tuple(style.color.get_truecolor())
            out[:, 2 * y + 1, x] = tuple(style.bgcolor.get_truecolor())
    return out


def test_the_images_of_a_pair_are_the_dataset_pixels(tmp_path: Path, checkpoints: Path):
    """Enter on the most-confused pair opens its test images, captioned and in confidence
    order; their cells' colours are the pixels of the CIFAR-100 `test` file at their index;
    `s` reverses the order; `l` shows the top losses."""
    cifar = real_cifar_or_skip()
    run = _real_run(checkpoints, cifar.parent)
    with open(cifar / "test", "rb") as f:
        pixels = pickle.load(f, encoding="bytes")[b"data"].reshape(-1, 3, 32, 32)
    data = load_eval(run)
    p = data.predictions
    assert p is not None
    pair = most_confused(data.confusion, top=1)[0]

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, results=run)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(
                pilot,
                lambda: isinstance(app.screen, ResultsScreen) and app.screen.data is not None,
                10,
                "results",
            )
            app.screen.query_one("#pairs").focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ErrorImagesScreen), 10, "images")
            screen = app.screen
            assert isinstance(screen, ErrorImagesScreen)
            await pilot.pause()
            title = str(screen.query_one("#images-title", Static).content)
            a, b = NAMES[pair.true], NAMES[pair.pred]
            assert f"true {a}, predicted {b}" in title and f"{pair.count} images" in title
            rows = screen.rows.tolist()
            want = [i for i in range(len(p)) if p.labels[i] == pair.true and p.pred[i] == pair.pred]
            assert sorted(rows) == want and len(rows) == pair.count
            assert np.all(np.diff(p.confidence[rows]) <= 0)
            tiles = screen.query_one("#images", Static).content
            assert isinstance(tiles, ImageTiles)
            first = rows[0]
            assert tiles.captions[0] == [
                f"#{first} {100 * p.confidence[first]:.1f}% loss {p.losses[first]:.2f}",
                f"true {a}",
                f"pred {b}",
            ]
            width = screen.query_one("#images").size.width
            for k in range(min(2, len(rows))):
                np.testing.assert_array_equal(_tile_pixels(tiles, width, k), pixels[rows[k]])
            await pilot.press("s")
            assert screen.rows.tolist() == rows[::-1] or np.all(
                np.diff(p.confidence[screen.rows]) >= 0
            )
            assert "lowest first" in str(screen.query_one("#images-title", Static).content)
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen), 5, "results")
            await pilot.press("l")
            await wait_for(pilot, lambda: isinstance(app.screen, ErrorImagesScreen), 10, "losses")
            assert app.screen.rows.tolist() == _brute_top_losses(p, TOP_LOSSES)  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_a_missing_dataset_says_where_it_looked(tmp_path: Path, checkpoints: Path):
    run = _real_run(checkpoints, tmp_path / "nowhere")

    async def scenario() -> None:
        app = CifarApp(checkpoints=checkpoints, results=run)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(
                pilot,
                lambda: isinstance(app.screen, ResultsScreen) and app.screen.data is not None,
                10,
                "results",
            )
            await pilot.press("F")  # false negatives of the matrix row's class (class-000)
            await wait_for(pilot, lambda: isinstance(app.screen, ErrorImagesScreen), 10, "images")
            await pilot.pause()
            note = str(app.screen.query_one("#images-note", Static).content)
            assert f"looked in {tmp_path / 'nowhere' / 'cifar-100-python'}" in note
            assert "false negatives of class-000" in str(
                app.screen.query_one("#images-title", Static).content
            )

    asyncio.run(scenario())


def _cli(*args: str) -> tuple[int, str, str]:
    from tui.cli.common import app

    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "160", "NO_COLOR": "1"})
    return result.exit_code, result.stdout, result.stderr


def test_eval_top_losses_prints_them_in_order(tmp_path: Path, checkpoints: Path):
    run = _real_run(checkpoints, tmp_path)
    p = load_eval(run).predictions
    assert p is not None
    code, out, _ = _cli("eval", run.name, "--top-losses", "5", "--json")
    assert code == 0
    report = json.loads(out)
    assert [r["index"] for r in report["top_losses"]] == _brute_top_losses(p, 5)
    assert len(report["reliability"]) == 15 and 0 <= report["ece"] <= 1
    code, out, _ = _cli("eval", str(run), "--top-losses", "3")
    assert code == 0 and "top 3 losses" in out and "ECE" in out
    ranked = [line.split() for line in out.splitlines() if line.strip()[:2] in ("1 ", "2 ")]
    assert [int(row[1]) for row in ranked[:2]] == _brute_top_losses(p, 2)


def test_eval_top_losses_refuses_an_old_file_in_one_line(tmp_path: Path, checkpoints: Path):
    run = _real_run(checkpoints, tmp_path)
    arrays = _arrays(tmp_path, predictions=False)
    del arrays["probs"]
    np.savez(run / "eval.npz", **arrays)
    code, _, err = _cli("eval", run.name, "--top-losses", "5")
    assert code == 2 and "predates saved predictions" in err and len(err.strip().splitlines()) == 1
