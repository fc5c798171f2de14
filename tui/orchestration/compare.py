"""Comparing runs (torch-free, numpy only): which config keys differ, how the runs fall into
arms, and how per-class recall and the confusions changed from the first arm to another.

An **arm** is one recipe: the runs whose configs are the same but for the seed (and the keys that
only say where a run executes, `engine.config.WHERE_KEYS`). `arms_by_recipe` forms them from the
configs; `cifar-tui runs compare A1 A2 vs B1 B2` names them. With several seeds in both arms,
each class's change carries a t test across seeds, paired by seed when both arms hold the same
seeds (the same seed sees the same data order and augmentation draws), Welch's otherwise, and
the changes that survive Benjamini-Hochberg at `FDR_Q` are marked.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from engine.config import WHERE_KEYS
from engine.errors import BadInputError
from engine.runs import RunRegistry, find_run, read_run_meta
from tui.orchestration import stats
from tui.orchestration.evaldata import EVAL_FILE, EvalDataError, _read_arrays, row_normalise
from tui.orchestration.runs_view import flatten_config, value_text

SEED_KEY = "train.seed"
ARM_WORD = "vs"  # `compare A1 A2 vs B1 B2`: the runs before and after it are two arms
FDR_Q = 0.05
PAIRED, WELCH, NO_TEST = "paired t by seed", "Welch t", "none"
NEEDED = ("confusion", "class_names", "coarse_names", "fine_to_coarse")


@dataclass(frozen=True)
class ComparedRun:
    run_id: str
    run_dir: Path
    preset: str
    edited: bool  # the preset changed in Setup before launch (run.json)
    recipe: str | None  # a sweep's recipe label (run.json)
    flat: dict[str, Any]  # the resolved config, flattened (runs_view.flatten_config)

    @property
    def seed(self) -> Any:
        return self.flat.get(SEED_KEY)

    @property
    def origin(self) -> str:
        """Where the config came from: `quickstart`, `quickstart (edited)`, a sweep's recipe."""
        text = self.preset + (" (edited)" if self.edited else "")
        if self.recipe and self.recipe != self.preset:
            text += f" · {self.recipe}"
        return text


def _config_of(run_dir: Path, registered: dict[str, Any] | None) -> dict[str, Any]:
    """The registry's resolved config, else the run folder's config.yaml."""
    if registered:
        return registered
    path = run_dir / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"{path} cannot be read: {exc}") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{path} is damaged: not a mapping of config keys")
    return data


def load_runs(root: Path, refs: Sequence[str]) -> list[ComparedRun]:
    """The runs named by `refs` (ids, unique prefixes, `last`), in that order. BadInputError for
    an unknown or repeated run (the nearest id named) or a damaged run.json / config."""
    configs = RunRegistry(root).configs()
    out: list[ComparedRun] = []
    for ref in refs:
        run_dir = find_run(root, ref)
        if any(r.run_id == run_dir.name for r in out):
            raise BadInputError(f"run {run_dir.name} is named twice: name each run once")
        meta = read_run_meta(run_dir)
        config = _config_of(run_dir, configs.get(run_dir.name))
        recipe = meta.get("recipe")
        out.append(
            ComparedRun(
                run_id=run_dir.name,
                run_dir=run_dir,
                preset=str(meta["preset"]),
                edited=meta.get("edited") is True,
                recipe=recipe if isinstance(recipe, str) else None,
                flat=flatten_config(config),
            )
        )
    return out


# ------------------------------------------------------------------------------ configs


def config_diff(runs: Sequence[ComparedRun]) -> list[tuple[str, list[str]]]:
    """(key, each run's value as text) for the keys whose value differs between `runs` (a key
    some runs lack counts as differing: `-` where absent), sorted by key."""
    keys = sorted({k for r in runs for k in r.flat})
    out = []
    for key in keys:
        texts = [value_text(r.flat.get(key)) for r in runs]
        present = {key in r.flat for r in runs}
        if len(set(texts)) > 1 or len(present) > 1:
            out.append((key, texts))
    return out


# ------------------------------------------------------------------------------ arms


@dataclass
class Arm:
    name: str  # A, B, C ...
    runs: list[ComparedRun]

    def run_name(self, run: ComparedRun) -> str:
        """A run's short name in the tables: A1, A2, B1 ..."""
        return f"{self.name}{self.runs.index(run) + 1}"

    @property
    def label(self) -> str:
        seeds = f", {len(self.runs)} seeds" if len(self.runs) > 1 else ""
        return f"{self.name} ({self.runs[0].origin}{seeds})"


def recipe_key(run: ComparedRun) -> str:
    """The config without the seed and the where-keys: equal for the runs of one recipe."""
    kept = {k: value_text(v) for k, v in run.flat.items() if k != SEED_KEY and k not in WHERE_KEYS}
    return json.dumps(sorted(kept.items()))


def _named(groups: list[list[ComparedRun]]) -> list[Arm]:
    letters = string.ascii_uppercase
    return [Arm(letters[i] if i < len(letters) else f"Z{i}", runs) for i, runs in enumerate(groups)]


def arms_by_recipe(runs: Sequence[ComparedRun]) -> list[Arm]:
    """One arm per recipe, in the order the runs came; when every run is of one recipe (seeds of
    one config compared with each other), one arm per run."""
    groups: dict[str, list[ComparedRun]] = {}
    for run in runs:
        groups.setdefault(recipe_key(run), []).append(run)
    if len(groups) == 1:
        return _named([[r] for r in runs])
    return _named(list(groups.values()))


def split_arms(refs: Sequence[str]) -> list[list[str]] | None:
    """`A1 A2 vs B1 B2` -> [[A1, A2], [B1, B2]]; None when `vs` is not used. BadInputError for
    an arm left empty (`vs` first, last or twice in a row)."""
    if ARM_WORD not in refs:
        return None
    arms: list[list[str]] = [[]]
    for ref in refs:
        if ref == ARM_WORD:
            arms.append([])
        else:
            arms[-1].append(ref)
    if any(not arm for arm in arms):
        raise BadInputError(f"`{ARM_WORD}` needs runs on both sides: A1 A2 {ARM_WORD} B1 B2")
    return arms


def form_arms(root: Path, refs: Sequence[str]) -> list[Arm]:
    """The arms `refs` ask for: named with `vs`, else by recipe. BadInputError for fewer than two
    runs, an unknown or repeated run."""
    groups = split_arms(refs)
    wanted = [r for r in refs if r != ARM_WORD]
    if len(wanted) < 2:
        raise BadInputError("compare needs two runs or more: cifar-tui runs compare A B")
    runs = load_runs(root, wanted)
    if groups is None:
        return arms_by_recipe(runs)
    it = iter(runs)
    return _named([[next(it) for _ in group] for group in groups])


# ------------------------------------------------------------------------------ confusions


@dataclass
class Confusion:
    matrix: np.ndarray  # int [C, C], row = true class, column = predicted
    class_names: list[str]
    coarse_names: list[str]
    fine_to_coarse: np.ndarray  # int [C]

    def coarse(self) -> np.ndarray:
        """The superclass confusion [K, K]: counts summed by (true, predicted) superclass."""
        k = len(self.coarse_names)
        out = np.zeros((k, k), dtype=np.int64)
        rows = np.broadcast_to(self.fine_to_coarse[:, None], self.matrix.shape)
        cols = np.broadcast_to(self.fine_to_coarse[None, :], self.matrix.shape)
        np.add.at(out, (rows, cols), self.matrix)
        return out


def read_confusion(run_dir: Path) -> Confusion:
    """The confusion matrix and names of a run's eval.npz. Raises EvalDataError (its path)."""
    path = Path(run_dir) / EVAL_FILE
    d = _read_arrays(path)
    missing = [k for k in NEEDED if k not in d]
    if missing:
        raise EvalDataError(path, f"not a cifar-tui evaluation: no {', '.join(missing)}")
    m, f2c = d["confusion"], d["fine_to_coarse"]
    c = len(m)
    if m.ndim != 2 or m.shape != (c, c) or not c or m.dtype.kind not in "iu" or (m < 0).any():
        raise EvalDataError(path, f"confusion is {m.shape} {m.dtype}, not square counts")
    k = d["coarse_names"].size
    if d["class_names"].shape != (c,) or f2c.shape != (c,) or f2c.dtype.kind not in "iu":
        raise EvalDataError(path, f"class_names or fine_to_coarse is not one entry per {c} classes")
    if f2c.size and not ((f2c >= 0) & (f2c < k)).all():
        raise EvalDataError(path, f"fine_to_coarse holds values outside [0, {k})")
    return Confusion(
        m.astype(np.int64),
        [str(x) for x in d["class_names"]],
        [str(x) for x in d["coarse_names"].reshape(-1)],
        f2c.astype(np.int64),
    )


def recall(matrix: np.ndarray) -> np.ndarray:
    """Per-class recall [C]: the diagonal over the row (true class) sums; NaN for no images."""
    support = matrix.sum(axis=1).astype(np.float64)
    diag = np.diag(matrix).astype(np.float64)
    return np.divide(diag, support, out=np.full(len(matrix), np.nan), where=support > 0)


# ------------------------------------------------------------------------------ the diff


@dataclass
class Change:
    """One class (or superclass): its recall in arm a and b (means over the arm's runs)."""

    index: int
    name: str
    a: float
    b: float
    test: stats.Difference | None = None  # across seeds; None with one run an arm
    q: float | None = None  # the Benjamini-Hochberg adjusted p
    marked: bool = False  # survives the FDR correction

    @property
    def delta(self) -> float:
        return self.b - self.a

    @property
    def p(self) -> float | None:
        """The test's p; None without a test or when every seed's change was the same (no
        spread to test against: left out of the correction rather than counted as p = 0)."""
        t = self.test
        return t.p if t is not None and t.se else None


@dataclass
class PairChange:
    """A confusion (true, predicted): its share of the true class's images in a and b."""

    true: str
    pred: str
    a: float
    b: float

    @property
    def delta(self) -> float:
        return self.b - self.a


@dataclass
class LevelDiff:
    level: str  # "class" or "superclass"
    changes: list[Change]  # by change in recall, largest gain first (no-data classes last)
    grown: list[PairChange]  # the confusions that grew most
    shrunk: list[PairChange]  # ... and shrank most

    @property
    def marked(self) -> list[Change]:
        return [c for c in self.changes if c.marked]


@dataclass
class ConfusionDiff:
    a: Arm
    b: Arm
    method: str  # PAIRED, WELCH or NO_TEST
    legend: str  # the test in words, for the reader
    fine: LevelDiff
    coarse: LevelDiff
    order_a: list[int] = field(default_factory=list)  # runs of a and b in test order (paired:
    order_b: list[int] = field(default_factory=list)  # by seed)


def pairing(a: Arm, b: Arm) -> tuple[str, list[int], list[int], str]:
    """(method, a's run order, b's run order, legend). Paired when both arms hold the same
    distinct seeds (two at least), Welch with two runs an arm otherwise, else no test."""
    sa, sb = [r.seed for r in a.runs], [r.seed for r in b.runs]
    ia, ib = list(range(len(sa))), list(range(len(sb)))
    if min(len(sa), len(sb)) < 2:
        legend = "one run in an arm: no significance test (run more seeds to test a change)"
        return NO_TEST, ia, ib, legend
    mark = (
        f"* = survives Benjamini-Hochberg at FDR {FDR_Q:g} over each table's classes; "
        "p - = the same change with every seed (no spread: not tested)"
    )
    if len(set(sa)) == len(sa) and sorted(sa, key=str) == sorted(sb, key=str):
        ia = sorted(ia, key=lambda i: str(sa[i]))
        ib = sorted(ib, key=lambda i: str(sb[i]))
        legend = f"paired t test per class across {len(sa)} seeds (runs paired by seed); {mark}"
        return PAIRED, ia, ib, legend
    legend = f"Welch t test per class (the arms' seeds differ: unpaired); {mark}"
    return WELCH, ia, ib, legend


def _level(
    level: str,
    names: list[str],
    a: list[np.ndarray],
    b: list[np.ndarray],
    method: str,
    top: int,
) -> LevelDiff:
    """The diff of one level from each arm's confusion matrices (in test order)."""
    ra, rb = np.array([recall(m) for m in a]), np.array([recall(m) for m in b])
    changes = []
    for k, name in enumerate(names):
        xa, xb = ra[:, k], rb[:, k]
        mean_a = float(np.nanmean(xa)) if np.isfinite(xa).any() else float("nan")
        mean_b = float(np.nanmean(xb)) if np.isfinite(xb).any() else float("nan")
        change = Change(k, name, mean_a, mean_b)
        if method != NO_TEST and np.isfinite(xa).all() and np.isfinite(xb).all():
            test = stats.paired_difference if method == PAIRED else stats.welch_difference
            change.test = test(xa.tolist(), xb.tolist())
        changes.append(change)
    tested = [c for c in changes if c.p is not None]
    adjusted, keep = stats.benjamini_hochberg([c.p for c in tested if c.p is not None], FDR_Q)
    for c, q, kept in zip(tested, adjusted, keep, strict=True):
        c.q, c.marked = q, kept
    changes.sort(key=lambda c: (not np.isfinite(c.delta), -c.delta if np.isfinite(c.delta) else 0))
    rates_a = np.mean([row_normalise(m) for m in a], axis=0)
    rates_b = np.mean([row_normalise(m) for m in b], axis=0)
    delta = rates_b - rates_a
    np.fill_diagonal(delta, 0.0)
    order = np.argsort(delta.ravel(), kind="stable")
    size = len(names)

    def pair(flat: int) -> PairChange:
        t, p = divmod(int(flat), size)
        return PairChange(names[t], names[p], float(rates_a[t, p]), float(rates_b[t, p]))

    grown = [pair(i) for i in order[::-1][:top] if delta.ravel()[i] > 0]
    shrunk = [pair(i) for i in order[:top] if delta.ravel()[i] < 0]
    return LevelDiff(level, changes, grown, shrunk)


def check_same_classes(runs: Sequence[ComparedRun], confusions: Sequence[Confusion]) -> None:
    """BadInputError when the runs were tested on different class lists (another dataset)."""
    first = confusions[0]
    for run, c in zip(runs[1:], confusions[1:], strict=True):
        if c.class_names != first.class_names or c.coarse_names != first.coarse_names:
            raise BadInputError(
                f"{run.run_id} was tested on other classes ({len(c.class_names)}) than "
                f"{runs[0].run_id} ({len(first.class_names)}): they cannot be compared"
            )


def confusion_diff(
    a: Arm, b: Arm, confusions: dict[str, Confusion], top: int = 10
) -> ConfusionDiff:
    """Recall per class and superclass of arm b minus arm a, the `top` confusions that grew and
    shrank most, and (several seeds an arm) a t test per class with BH marking.
    `confusions`: run id -> its eval.npz confusion (read_confusion)."""
    method, ia, ib, legend = pairing(a, b)
    ca = [confusions[a.runs[i].run_id] for i in ia]
    cb = [confusions[b.runs[i].run_id] for i in ib]
    check_same_classes([a.runs[i] for i in ia] + [b.runs[i] for i in ib], ca + cb)
    first = ca[0]
    fine = _level("class", first.class_names, [c.matrix for c in ca], [c.matrix for c in cb],
                  method, top)  # fmt: skip
    coarse = _level("superclass", first.coarse_names, [c.coarse() for c in ca],
                    [c.coarse() for c in cb], method, top)  # fmt: skip
    return ConfusionDiff(a, b, method, legend, fine, coarse, ia, ib)


def read_confusions(arms: Sequence[Arm]) -> dict[str, Confusion]:
    """Each run's confusion; BadInputError naming a run without results or a damaged file."""
    out = {}
    for arm in arms:
        for run in arm.runs:
            try:
                out[run.run_id] = read_confusion(run.run_dir)
            except EvalDataError as exc:
                raise BadInputError(f"{run.run_id}: {exc}") from None
    return out
