"""tui.orchestration.compare on hand-built run folders: the config diff, the arms, the recall and
confusion changes against a slow per-image count, the per-class tests and the Benjamini-Hochberg
marks against scipy (an independent implementation), and the refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sp

from engine.errors import BadInputError
from tests.tui.compare_runs import (
    CLASSES,
    COARSE,
    FINE_TO_COARSE,
    SKILL_A,
    Made,
    make_compared_run,
    recipe,
    two_arms,
)
from tui.orchestration.compare import (
    NO_TEST,
    PAIRED,
    WELCH,
    arms_by_recipe,
    config_diff,
    confusion_diff,
    form_arms,
    load_runs,
    read_confusions,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Made], list[Made]]:
    root = tmp_path_factory.mktemp("compare") / "checkpoints"
    a, b = two_arms(root)
    return root, a, b


def ids(made: list[Made]) -> list[str]:
    return [m.run_id for m in made]


# ------------------------------------------------------------------------------ configs


def test_the_config_diff_holds_only_the_keys_that_differ_with_each_runs_value(built) -> None:
    root, a, b = built
    runs = load_runs(root, [a[0].run_id, b[1].run_id])
    assert config_diff(runs) == [
        ("description", ["sgd at 0.1", "adamw at 0.001"]),
        ("optim.lr", ["0.1", "0.001"]),
        ("optim.name", ["sgd", "adamw"]),
        ("train.seed", ["0", "1"]),
    ]
    assert [r.origin for r in runs] == ["quickstart", "adamw"]


def test_a_key_one_run_lacks_differs_and_the_edited_preset_is_said(tmp_path: Path) -> None:
    config = recipe()
    other = json.loads(json.dumps(config))
    other["train"]["ema_decay"] = 0.999
    other["augment"] = [{"name": "random_crop", "padding": 2}]
    make_compared_run(tmp_path, "20260101-120000-x-aaaa", config, SKILL_A)
    make_compared_run(tmp_path, "20260101-120001-y-bbbb", other, SKILL_A, edited=True)
    runs = load_runs(tmp_path, ["20260101-120000", "20260101-120001"])
    assert dict(config_diff(runs)) == {
        "augment": ["random_crop, hflip", "random_crop"],
        "augment.random_crop.padding": ["4", "2"],
        "train.ema_decay": ["-", "0.999"],
    }
    assert runs[1].origin == "quickstart (edited)"


def test_the_config_comes_from_config_yaml_when_the_registry_has_none(built, tmp_path) -> None:
    root, a, _ = built
    shutil.copytree(root, tmp_path / "c")
    (tmp_path / "c" / "runs.sqlite").unlink()
    runs = load_runs(tmp_path / "c", [a[0].run_id])
    assert runs[0].flat["optim.name"] == "sgd" and runs[0].seed == 0


# ------------------------------------------------------------------------------ arms


def test_arms_group_the_runs_of_one_recipe_whatever_their_seed_and_where_keys(built) -> None:
    root, a, b = built
    runs = load_runs(root, [a[0].run_id, b[0].run_id, a[1].run_id, b[1].run_id])
    arms = arms_by_recipe(runs)
    assert [(arm.name, [r.run_id for r in arm.runs]) for arm in arms] == [
        ("A", [a[0].run_id, a[1].run_id]),
        ("B", [b[0].run_id, b[1].run_id]),
    ]
    assert arms[1].label == "B (adamw, 2 seeds)"


def test_runs_of_one_recipe_alone_are_one_arm_each(built) -> None:
    root, a, _ = built
    arms = arms_by_recipe(load_runs(root, ids(a)))
    assert [len(arm.runs) for arm in arms] == [1, 1, 1]


def test_vs_names_the_arms(built) -> None:
    root, a, b = built
    arms = form_arms(root, [a[0].run_id, b[0].run_id, "vs", a[1].run_id])
    assert [[r.run_id for r in arm.runs] for arm in arms] == [
        [a[0].run_id, b[0].run_id],
        [a[1].run_id],
    ]


@pytest.mark.parametrize(
    "refs, words",
    [
        (["20260101-120000"], "two runs or more"),
        (["20260101-120000", "vs"], "needs runs on both sides"),
        (["20260101-120000", "20260101-120000-sgd-a0a0"], "named twice"),
        (["20260101-120000", "20260101-12000x-sgd-a0a0"], "did you mean 20260101-120000-sgd-a0a0"),
        (["20260101-120000", "2026"], "ambiguous"),
    ],
)
def test_bad_run_lists_are_refused_in_one_line(built, refs: list[str], words: str) -> None:
    with pytest.raises(BadInputError, match=words) as caught:
        form_arms(built[0], refs)
    assert "\n" not in str(caught.value)


def test_a_run_without_results_or_of_other_classes_is_refused_by_path(built, tmp_path) -> None:
    root, a, b = built
    shutil.copytree(root, tmp_path / "c")
    (tmp_path / "c" / a[0].run_id / "eval.npz").unlink()
    arms = form_arms(tmp_path / "c", [a[0].run_id, b[0].run_id])
    with pytest.raises(BadInputError, match=f"{a[0].run_id}: .*eval.npz"):
        read_confusions(arms)
    other = tmp_path / "c" / b[0].run_id / "eval.npz"
    with np.load(other) as z:
        d = dict(z)
    np.savez(other, **{**d, "class_names": np.array([n.upper() for n in CLASSES])})
    arms = form_arms(tmp_path / "c", [a[1].run_id, b[0].run_id])
    with pytest.raises(BadInputError, match="other classes"):
        confusion_diff(arms[0], arms[1], read_confusions(arms))


# ------------------------------------------------------------------------------ the diff


def slow_recall(made: Made, group: np.ndarray | None = None) -> list[float]:
    """Recall per class (or per superclass, `group` mapping a class to it), image by image."""
    labels = made.labels if group is None else group[made.labels]
    preds = made.preds if group is None else group[made.preds]
    names = CLASSES if group is None else COARSE
    out = []
    for k in range(len(names)):
        mine = [i for i in range(len(labels)) if labels[i] == k]
        out.append(sum(1 for i in mine if preds[i] == k) / len(mine))
    return out


def slow_rate(made: Made, true: str, pred: str) -> float:
    t, p = CLASSES.index(true), CLASSES.index(pred)
    mine = [i for i in range(len(made.labels)) if made.labels[i] == t]
    return sum(1 for i in mine if made.preds[i] == p) / len(mine)


def test_one_run_an_arm_recall_and_confusion_changes_match_a_per_image_count(built) -> None:
    root, a, b = built
    arms = form_arms(root, [a[0].run_id, b[0].run_id])
    diff = confusion_diff(arms[0], arms[1], read_confusions(arms), top=3)
    assert diff.method == NO_TEST and "no significance test" in diff.legend
    ra, rb = slow_recall(a[0]), slow_recall(b[0])
    for c in diff.fine.changes:
        assert (c.a, c.b) == pytest.approx((ra[c.index], rb[c.index]))
        assert c.test is None and not c.marked
    deltas = [c.delta for c in diff.fine.changes]
    assert deltas == sorted(deltas, reverse=True)
    assert diff.fine.changes[0].name == "apple"  # B's skill at apples: 0.95 against 0.5
    every = sorted(
        ((slow_rate(b[0], t, p) - slow_rate(a[0], t, p), t, p) for t in CLASSES for p in CLASSES
         if t != p), reverse=True)  # fmt: skip
    assert [(p.true, p.pred) for p in diff.fine.grown] == [(t, p) for _, t, p in every[:3]]
    assert [x.delta for x in diff.fine.grown] == pytest.approx([d for d, _, _ in every[:3]])
    assert [x.delta for x in diff.fine.shrunk] == pytest.approx([d for d, _, _ in every[::-1][:3]])
    sa, sb = slow_recall(a[0], FINE_TO_COARSE), slow_recall(b[0], FINE_TO_COARSE)
    for c in diff.coarse.changes:
        assert (c.a, c.b) == pytest.approx((sa[c.index], sb[c.index]))


def test_same_seeds_pair_each_class_and_bh_marks_as_scipy_does(built) -> None:
    root, a, b = built
    refs = [b[2].run_id, b[0].run_id, b[1].run_id, "vs", *ids(a)]  # B first, seeds out of order
    arms = form_arms(root, refs)
    diff = confusion_diff(arms[0], arms[1], read_confusions(arms))  # A's recall minus B's
    assert diff.method == PAIRED and "paired" in diff.legend
    recall_b = np.array([slow_recall(m) for m in b])  # rows by seed 0, 1, 2
    recall_a = np.array([slow_recall(m) for m in a])
    by_class = {c.index: c for c in diff.fine.changes}
    tested = []
    for k in range(len(CLASSES)):
        change = by_class[k]
        assert change.test is not None
        assert change.test.mean == pytest.approx((recall_a[:, k] - recall_b[:, k]).mean())
        differences = recall_a[:, k] - recall_b[:, k]
        if np.ptp(differences) == 0:  # the same skill: the same draws, no spread to test
            assert change.p is None and change.q is None and not change.marked
            continue
        ref = sp.ttest_rel(recall_a[:, k], recall_b[:, k])  # the mean of A - B
        assert change.p == pytest.approx(ref.pvalue, rel=1e-6)
        tested.append((k, ref.pvalue))
    assert {"apple", "maple"} <= {CLASSES[k] for k, _ in tested}
    q = sp.false_discovery_control([p for _, p in tested], method="bh")
    for (k, _), qk in zip(tested, q, strict=True):
        assert by_class[k].q == pytest.approx(qk, rel=1e-6)
        assert by_class[k].marked == (qk <= 0.05)
    assert {"apple", "maple"} <= {c.name for c in diff.fine.marked}  # the two large changes


def test_other_seeds_are_tested_unpaired_with_welch_as_scipy_does(tmp_path: Path) -> None:
    a = [make_compared_run(tmp_path, f"20260101-12000{s}-a-aa{s}{s}", recipe("sgd", 0.1, s),
                           SKILL_A, noise_seed=s) for s in (0, 1, 2)]  # fmt: skip
    b = [make_compared_run(tmp_path, f"20260102-12000{s}-b-bb{s}{s}", recipe("sgd", 0.2, s),
                           SKILL_A, noise_seed=9 + s) for s in (3, 4)]  # fmt: skip
    arms = form_arms(tmp_path, ids(a) + ids(b))
    diff = confusion_diff(arms[0], arms[1], read_confusions(arms))
    assert diff.method == WELCH and "unpaired" in diff.legend
    recall_a = np.array([slow_recall(m) for m in a])
    recall_b = np.array([slow_recall(m) for m in b])
    for c in diff.fine.changes:
        ref = sp.ttest_ind(recall_b[:, c.index], recall_a[:, c.index], equal_var=False)
        assert c.p == pytest.approx(ref.pvalue, rel=1e-6)


def test_a_change_the_same_with_every_seed_is_not_tested(tmp_path: Path) -> None:
    """Identical per-seed differences have no spread: no p (scipy has none either), no mark."""
    for s in (0, 1):
        make_compared_run(tmp_path, f"20260101-12000{s}-a-aa{s}{s}", recipe("sgd", 0.1, s),
                          SKILL_A, noise_seed=s)  # fmt: skip
        make_compared_run(
            tmp_path, f"20260102-12000{s}-b-bb{s}{s}", recipe("sgd", 0.2, s), SKILL_A, noise_seed=s
        )  # fmt: skip  (the same predictions)
    arms = form_arms(
        tmp_path, ["20260101-120000", "20260101-120001", "20260102-120000", "20260102-120001"]
    )
    diff = confusion_diff(arms[0], arms[1], read_confusions(arms))
    assert diff.method == PAIRED
    assert all(c.delta == 0 and c.p is None and not c.marked for c in diff.fine.changes)


def test_a_class_without_test_images_has_no_recall_and_sorts_last(tmp_path: Path) -> None:
    from tui.orchestration.compare import Arm, ComparedRun, Confusion

    def run(name: str, seed: int) -> ComparedRun:
        return ComparedRun(name, tmp_path, "p", False, None, {"train.seed": seed})

    def confusion(diag: list[int]) -> Confusion:
        m = np.diag(diag).astype(np.int64)
        m[0, 1] = 1  # one apple taken for a bear
        return Confusion(m, ["apple", "bear", "cloud"], ["all"], np.zeros(3, dtype=np.int64))

    a, b = Arm("A", [run("a0", 0), run("a1", 1)]), Arm("B", [run("b0", 0), run("b1", 1)])
    confusions = {
        "a0": confusion([3, 4, 0]),
        "a1": confusion([2, 4, 0]),
        "b0": confusion([4, 3, 0]),
        "b1": confusion([5, 2, 0]),
    }
    diff = confusion_diff(a, b, confusions)
    assert [c.name for c in diff.fine.changes] == ["apple", "bear", "cloud"]
    cloud = diff.fine.changes[-1]
    assert np.isnan(cloud.a) and np.isnan(cloud.b) and cloud.test is None and not cloud.marked
    apple = diff.fine.changes[0]
    assert (apple.a, apple.b) == pytest.approx(((3 / 4 + 2 / 3) / 2, (4 / 5 + 5 / 6) / 2))
