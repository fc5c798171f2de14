"""Test-time augmentation (engine/tta.py), `eval.tta` in runs, and `cifar-tui eval CHECKPOINT`.

References: views against a slow per-image torchvision pad + crop + flip; the merged prediction
against a hand-worked three-image case and a per-image numpy loop; deduplication by counting
forward calls; the eval command against the run's own summary for the same (EMA) weights.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as tvf
from rich.console import Console
from torch import nn

from engine.config import config_to_dict, load_config
from engine.data import ImageSet
from engine.errors import ConfigError
from engine.evaluate_checkpoint import main as engine_eval_main
from engine.events import Phase, SystemSample, TTAEvaluated, parse_event, read_events
from engine.outcome import RunSummary
from engine.presets import bundled_folder
from engine.runs import RUN_META_FILE
from engine.sinks import RunRecorder, run_sinks
from engine.trainer import Trainer
from engine.tta import apply_view, evaluate_tta
from engine.tta_views import DEFAULT_VIEWS, PAD, View, all_view_names, parse_view, unique_views
from tests.conftest import cli
from tui.orchestration.evaldata import tta_scores
from tui.orchestration.headless import HeadlessPrinter, summary_table

PRESETS = bundled_folder("preset")

CPU = torch.device("cpu")


def as_logits(x: torch.Tensor) -> torch.Tensor:
    return x.float()


# --------------------------------------------------------------------------- view names


@pytest.mark.parametrize(
    ("name", "view"),
    [
        ("identity", View()),
        ("shift:0,0", View()),
        ("hflip", View(flip=True)),
        ("hflip+shift:0,0", View(flip=True)),
        ("shift:2,-3", View(dx=2, dy=-3)),
        ("shift:+4,-4", View(dx=4, dy=-4)),
        (" hflip + shift: -1, 2 ", View(True, -1, 2)),
    ],
)
def test_view_names_are_canonicalised(name, view):
    assert parse_view(name) == view
    assert parse_view(view.name) == view  # the canonical name reads back as the same view


def test_every_canonical_name_is_distinct_and_round_trips():
    names = all_view_names()
    assert len(names) == len(set(names)) == 2 * (2 * PAD + 1) ** 2
    assert all(parse_view(n).name == n for n in names)
    assert len(unique_views(DEFAULT_VIEWS)) == len(DEFAULT_VIEWS) == 10


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("hfilp", "did you mean 'hflip'?"),
        ("shfit:1,1", "did you mean 'shift:1,1'?"),
        ("shift:5,0", "out of range"),
        ("hflip+shift:0,-9", "out of range"),
        ("shift:2", "did you mean 'shift:2,0'?"),  # a YAML flow list split at the comma
        ("rotate", "unknown TTA view 'rotate'"),
    ],
)
def test_bad_view_names_are_refused_with_the_nearest_valid_one(name, message):
    with pytest.raises(ConfigError, match=message.replace("?", r"\?").replace("+", r"\+")):
        parse_view(name)


def test_config_validates_eval_tta():
    assert load_config("quickstart").eval.tta == []
    cfg = load_config("quickstart", ['eval.tta=[identity, "shift:0,0", hflip]'])
    assert cfg.eval.tta == ["identity", "shift:0,0", "hflip"]
    with pytest.raises(ConfigError, match=r"eval\.tta\.1: unknown TTA view 'hlfip'; did you mean"):
        load_config("quickstart", ["eval.tta=[identity, hlfip]"])


def test_tta_preset_is_the_row_above_plus_tta():
    base = config_to_dict(load_config("wrn40_10_sam_ls"))
    tta = config_to_dict(load_config("wrn40_10_sam_ls_full_tta"))
    assert tta["eval"]["tta"] == list(DEFAULT_VIEWS)
    tta["eval"]["tta"], tta["description"] = [], base["description"]
    assert tta == base
    text = (PRESETS / "wrn40_10_sam_ls_full_tta.yaml").read_text()
    assert "reported 0.8437" in text


# --------------------------------------------------------------------------- views on images


def reference_view(image: torch.Tensor, view: View) -> torch.Tensor:
    """One uint8 [3, H, W] image through torchvision: zero pad 4, crop at (4+dy, 4+dx), flip."""
    h, w = image.shape[-2:]
    padded = tvf.pad(image, [PAD], fill=0)
    out = tvf.crop(padded, top=PAD + view.dy, left=PAD + view.dx, height=h, width=w)
    return tvf.horizontal_flip(out) if view.flip else out


def test_views_match_torchvision_pad_crop_flip_pixel_for_pixel():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=g)
    for name in all_view_names():
        view = parse_view(name)
        batch = apply_view(images, view)
        assert batch.dtype == torch.uint8 and batch.shape == images.shape
        for i in range(len(images)):
            assert torch.equal(batch[i], reference_view(images[i], view)), name


def test_shift_moves_the_window_by_dx_dy():
    image = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4) + 1
    out = apply_view(image, parse_view("shift:1,2"))[0, 0]
    assert torch.equal(out[0, :3], image[0, 0, 2, 1:])  # out(y, x) = in(y + dy, x + dx)
    assert out[2:].eq(0).all() and out[:, 3].eq(0).all()  # beyond the edge: the zero padding


# --------------------------------------------------------------------------- merged prediction


class FirstRow(nn.Module):
    """Logits = the first C pixels of channel 0's first row; counts its forward calls."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        self.classes, self.calls = classes, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x[:, 0, 0, : self.classes]


def rows_as_images(rows: list[list[int]], height: int = 1) -> torch.Tensor:
    images = torch.zeros(len(rows), 3, height, len(rows[0]), dtype=torch.uint8)
    images[:, 0, 0] = torch.tensor(rows, dtype=torch.uint8)
    return images


def test_merged_accuracy_matches_a_hand_worked_case():
    # three classes; identity reads pixels 0..2 of the row, shift:1,0 reads pixels 1..3
    rows = [[6, 0, 0, 5], [1, 0, 4, 0], [3, 0, 1, 0]]
    labels = torch.tensor([0, 1, 2])
    # A (label 0): identity [6,0,0] right; shift [0,0,5] wrong; merged p0 .501 > p2 .495: right
    # B (label 1): identity [1,0,4] wrong; shift [0,4,0] right; merged p1 .491 > p2 .477: right
    # C (label 2): identity [3,0,1] -> 0 and shift [0,1,0] -> 1, merged [.53 .31 .16]: wrong
    data = ImageSet(rows_as_images(rows), labels)
    result = evaluate_tta(
        FirstRow(3), data, ["identity", "shift:1,0"], normalize=as_logits, device=CPU,
        batch_size=8,
    )  # fmt: skip
    assert [v.view for v in result.views] == ["identity", "shift:1,0"]
    assert [v.top1 for v in result.views] == [1 / 3, 1 / 3]
    assert result.top1 == 2 / 3 and result.top5 == 1.0  # top-5 of three classes
    assert result.cost == 2 and result.requested == 2 and result.count == 3

    def softmax(z: list[float]) -> list[float]:
        e = [math.exp(v) for v in z]
        return [v / sum(e) for v in e]

    a = [(p + q) / 2 for p, q in zip(softmax([6, 0, 0]), softmax([0, 0, 5]), strict=True)]
    b = [(p + q) / 2 for p, q in zip(softmax([1, 0, 4]), softmax([0, 4, 0]), strict=True)]
    assert a[0] > a[2] > a[1] and b[1] > b[2] > b[0]  # the margins the comments state


def scaled(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 3


def test_merged_top1_top5_match_a_per_image_numpy_loop():
    g = torch.Generator().manual_seed(1)
    n, classes = 37, 10
    # each row a permutation of 1..16: no two logits of a view tie (the padding's zeros stay
    # outside the ten pixels each of these views reads)
    images = torch.zeros(n, 3, 1, 16, dtype=torch.uint8)
    images[:, 0, 0] = torch.stack([torch.randperm(16, generator=g) + 1 for _ in range(n)])
    labels = torch.randint(0, classes, (n,), generator=g)
    names = ["identity", "hflip", "shift:3,0", "hflip+shift:-2,0"]
    result = evaluate_tta(
        FirstRow(classes), ImageSet(images, labels), names, normalize=scaled, device=CPU,
        batch_size=5,  # several batches, the last one short
    )  # fmt: skip
    hits = np.zeros((len(names), 2))
    merged_hits = np.zeros(2)
    for i in range(n):
        probs = []
        for k, name in enumerate(names):
            row = reference_view(images[i], parse_view(name))[0, 0, :classes].double().numpy() / 3
            p = np.exp(row - row.max())
            p /= p.sum()
            probs.append(p)
            rank = int((p > p[labels[i]]).sum())
            hits[k] += [rank < 1, rank < 5]
        mean = np.mean(probs, axis=0)
        rank = int((mean > mean[labels[i]]).sum())
        merged_hits += [rank < 1, rank < 5]
    got = np.array([[v.top1, v.top5] for v in result.views])
    np.testing.assert_allclose(got, hits / n)
    np.testing.assert_allclose([result.top1, result.top5], merged_hits / n)


def test_identical_views_cost_one_forward_pass():
    images = torch.randint(0, 5, (6, 3, 2, 8), dtype=torch.uint8)
    data = ImageSet(images, torch.zeros(6, dtype=torch.int64))
    model = FirstRow(4)
    result = evaluate_tta(
        model, data, ["identity", "shift:0,0", "identity"], normalize=as_logits, device=CPU,
        batch_size=100,
    )  # fmt: skip
    assert model.calls == 1 and result.cost == 1 and result.requested == 3
    assert [v.view for v in result.views] == ["identity"]
    assert result.top1 == result.views[0].top1
    model.calls = 0
    result = evaluate_tta(
        model, data, ["hflip", "hflip+shift:0,0", "shift:0,0"], normalize=as_logits, device=CPU,
        batch_size=4,  # two batches: one pass per distinct view per batch
    )  # fmt: skip
    assert model.calls == 2 * 2 and result.cost == 2
    assert [v.view for v in result.views] == ["hflip", "identity"]


def test_the_network_gets_back_its_training_mode():
    model = FirstRow(4).train()
    data = ImageSet(torch.zeros(2, 3, 2, 8, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64))
    evaluate_tta(model, data, ["hflip"], normalize=as_logits, device=CPU, batch_size=4)
    assert model.training


# --------------------------------------------------------------------------- a real tiny run


TINY_RUN_VIEWS = ["identity", "shift:0,0", "hflip", "hflip+shift:1,-1"]
TINY_RUN = [
    *("model.name=vit", "model.patch_size=8", "model.dim=16", "model.depth=1", "model.heads=2"),
    *("model.mlp_ratio=1", "data.subset=64", "data.val_size=100", "data.num_workers=0"),
    *("train.epochs=2", "train.ema_decay=0.9"),
    "eval.tta=" + json.dumps(TINY_RUN_VIEWS),
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A two-epoch synthetic run of a tiny ViT with EMA weights and TTA: (folder, summary)."""
    root = tmp_path_factory.mktemp("checkpoints")
    run_dir = root / "20260101-000000-tta-0001"
    run_dir.mkdir()
    (run_dir / RUN_META_FILE).write_text(json.dumps({"run_id": run_dir.name, "preset": "q"}))
    cfg = load_config("quickstart", TINY_RUN)
    assert cfg.eval.tta == TINY_RUN_VIEWS
    events = RunRecorder(run_dir / "events.jsonl", run_sinks(run_dir, None))  # summary.json too
    summary = Trainer(cfg, run_dir, run_dir.name, "quickstart", events).run()
    assert summary["status"] == "done"
    return run_dir, summary


def test_a_run_with_eval_tta_reports_it_in_summary_and_events(tiny_run):
    run_dir, summary = tiny_run
    tta = summary["tta"]
    assert tta["cost"] == 3 and tta["requested"] == 4 and tta["count"] == 2000
    assert [v["view"] for v in tta["views"]] == ["identity", "hflip", "hflip+shift:1,-1"]
    assert tta["views"][0]["top1"] == summary["test_top1"]  # identity = the plain evaluation
    assert tta["views"][0]["top5"] == summary["test_top5"]
    assert json.loads((run_dir / "summary.json").read_text())["tta"] == tta
    events = read_events(run_dir / "events.jsonl")
    types = [e.type for e in events]
    assert types[-2:] == ["tta_evaluated", "finished"]
    event = events[-2]
    assert isinstance(event, TTAEvaluated) and event.checkpoint == "best"
    assert event.views == tta["views"] and event.top1 == tta["top1"] and event.cost == 3
    assert parse_event(event.to_json()) == event


def test_the_run_announces_its_phases_and_samples_the_system(tiny_run):
    run_dir, summary = tiny_run
    events = read_events(run_dir / "events.jsonl")
    phases = [(e.phase, e.detail, e.images, e.passes) for e in events if isinstance(e, Phase)]
    tests = [("testing", "last", 2000, 1)]
    if summary["best_epoch"] != 2:
        tests.append(("testing", "best", 2000, 1))
    views = "identity,hflip,hflip+shift:1,-1"
    assert phases == [
        *[("validating", "", 100, 1)] * 2,
        *tests,
        ("results", "", 0, 1),
        ("tta", views, 2000, 3),
    ]
    samples = [e for e in events if isinstance(e, SystemSample)]
    assert samples and all(s.rss_mb and s.rss_mb > 10 for s in samples)
    assert all(s.gpu_util is None for s in samples)  # a CPU run: no GPU fields


def test_cli_eval_of_a_run_id_gives_the_runs_numbers_for_the_same_weights(tiny_run):
    """The best checkpoint's EMA weights, rebuilt from its stored config, on the test set."""
    run_dir, summary = tiny_run
    views = ["--views", " ".join(TINY_RUN_VIEWS)]
    result = cli("eval", run_dir.name[:15], *views, "--json", checkpoints=run_dir.parent)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["checkpoint"] == str(run_dir / "best.pt") and report["weights"] == "ema"
    assert report["epoch"] == summary["best_epoch"] and report["synthetic"]
    identity = report["views"][0]
    assert identity["view"] == "identity"  # the plain evaluation
    assert (identity["top1"], identity["top5"]) == (summary["test_top1"], summary["test_top5"])
    for key in ("views", "top1", "top5", "count", "cost", "requested"):
        assert report[key] == summary["tta"][key], key


def test_cli_eval_refuses_a_missing_or_damaged_checkpoint_naming_it(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    missing = tmp_path / "nope.pt"
    damaged = tmp_path / "damaged.pt"
    blob = bytearray((run_dir / "best.pt").read_bytes())
    blob[-10] ^= 0xFF
    damaged.write_bytes(bytes(blob))
    for path, reason in ((missing, "does not exist"), (damaged, "fails its checksum")):
        result = cli("eval", str(path), "--tta", checkpoints=run_dir.parent, timeout=60)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.strip() == f"cifar-tui: error: checkpoint {path} {reason}" + (
            " (damaged): refused" if path == damaged else ""
        )
    result = cli("eval", "no-such-run", checkpoints=run_dir.parent, timeout=60)
    assert result.returncode == 2 and "unknown run 'no-such-run'" in result.stderr


def test_engine_eval_exits_2_naming_a_damaged_checkpoint(tmp_path, capsys):
    path = tmp_path / "best.pt"
    path.write_bytes(b"cifar-tui-checkpoint v1 sha256=" + b"0" * 64 + b" size=3\nabc")
    args = argparse.Namespace(
        checkpoint=path, tta=[], out=tmp_path / "out.json", data_dir=None, device="cpu",
        batch_size=None, no_progress=True, eval_file=None,
    )  # fmt: skip
    assert engine_eval_main(args) == 2
    assert capsys.readouterr().err.strip() == (
        f"cifar-tui: error: checkpoint {path} fails its checksum (damaged): refused"
    )
    assert not args.out.exists()


# --------------------------------------------------------------------------- UI side

TTA_SUMMARY: dict[str, Any] = {
    "views": [
        {"view": "identity", "top1": 0.5, "top5": 0.8},
        {"view": "hflip", "top1": 0.48, "top5": 0.79},
    ],
    "top1": 0.53,
    "top5": 0.82,
    "count": 2000,
    "cost": 2,
    "requested": 3,
}


def test_headless_summary_prints_tta_lines_only_when_present():
    def text(summary: dict) -> str:
        console = Console(record=True, width=120, color_system=None)
        console.print(summary_table(RunSummary.from_dict(summary)))
        return console.export_text()

    base = {"run_id": "r", "status": "done", "test_top1": 0.5, "test_top5": 0.8}
    assert "TTA" not in text(base)
    shown = text({**base, "tta": TTA_SUMMARY})
    assert "TTA top-1 / top-5 (best)" in shown and "53.00% / 82.00%  (2 views, 2x cost)" in shown
    assert "identity  50.00% / 80.00%" in shown and "hflip     48.00% / 79.00%" in shown
    printer = HeadlessPrinter(Console(record=True, width=120, color_system=None))
    printer.handle(TTAEvaluated(split="test", checkpoint="best", epoch=3, **TTA_SUMMARY))
    assert "with TTA (2 views, 2x cost): top-1 53.00%" in printer.console.export_text()


def test_results_screen_shows_a_tta_tab_only_for_runs_with_tta(tmp_path):
    import asyncio

    from textual.widgets import TabbedContent

    from tests.tui.conftest import wait_for
    from tests.tui.fixtures import make_run
    from tui.app import CifarApp
    from tui.screens.results import ResultsScreen

    plain = make_run(tmp_path / "checkpoints")
    with_tta = make_run(tmp_path / "checkpoints", run_id="20260101-130000-fixture-tta1")
    summary = json.loads((with_tta / "summary.json").read_text())
    summary = {**summary, "test_top1": 0.5}
    (with_tta / "summary.json").write_text(json.dumps({**summary, "tta": TTA_SUMMARY}))
    scores = tta_scores(TTA_SUMMARY)
    assert scores is not None and scores.cost == 2
    assert tta_scores(summary.get("tta")) is None

    async def check(run_dir: Path, expect_tab: bool) -> None:
        app = CifarApp(checkpoints=tmp_path / "checkpoints", results=run_dir)
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(
                pilot,
                lambda: isinstance(app.screen, ResultsScreen) and app.screen.data is not None,
                10,
                "results",
            )
            await pilot.pause()
            screen = app.screen
            assert bool(screen.query("#tta-panel")) is expect_tab
            assert (screen.check_action("tab", ("tta",)) is True) is expect_tab
            if expect_tab:
                await pilot.press("t")
                await pilot.pause()
                assert screen.query_one("#tabs", TabbedContent).active == "tta"
                lines = app.export_screenshot().replace("&#160;", " ")
                assert "merged (2 views)" in lines and "+3.00" in lines
                assert "test top-1 50.00%  TTA top-1 53.00% (2x)" in lines

    asyncio.run(check(plain, False))
    asyncio.run(check(with_tta, True))


def test_eval_file_of_the_best_checkpoint_is_the_runs_own_test_pass(tiny_run, tmp_path):
    """`python -m engine eval --eval-file` (the dashboard's evaluation of a run that has none)
    writes the eval.npz the run's test pass wrote for the same weights."""
    import numpy as np

    from engine.evaluate_checkpoint import evaluate_checkpoint

    run_dir, summary = tiny_run
    out = tmp_path / "eval.npz"
    report = evaluate_checkpoint(run_dir / "best.pt", progress=False, eval_file=out)
    assert report["views"][0]["top1"] == summary["test_top1"] and report["cost"] == 1
    mine, runs = np.load(out), np.load(run_dir / "eval.npz")
    assert sorted(mine.files) == sorted(runs.files)
    keys = ("confusion", "labels", "class_names", "fine_to_coarse", "ap", "auc", "pred_index")
    for key in (*keys, "top5_classes", "test_images"):  # a synthetic run keeps its test images
        assert np.array_equal(mine[key], runs[key]), key
    # the calibration the test pass wrote to the summary, and the one `cifar-tui eval` reports
    assert report["ece"] == pytest.approx(summary["ece"], abs=1e-6) and 0 < summary["ece"] < 1
