"""A finished run's test-set evaluation (`eval.npz` + `summary.json`), ready to draw. Numpy only."""

from __future__ import annotations

import textwrap
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.calibration import Reliability, reliability
from engine.outcome import RunSummary, SummaryError, read_summary
from engine.predictions import KEYS as PREDICTION_KEYS
from tui.orchestration.error_analysis import Predictions, predictions_of
from tui.orchestration.no_results import dashboard_report

EVAL_FILE = "eval.npz"


class EvalDataError(Exception):
    """A run's eval.npz that cannot be shown: its path and what is wrong with it."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path.name} is damaged ({reason}): {path}")
        self.path = path
        self.reason = reason


@dataclass
class Pair:
    true: int
    pred: int
    count: int
    rate: float  # share of the true class's test images


@dataclass
class TTAView:
    view: str
    top1: float
    top5: float


@dataclass
class TTAScores:
    """Test-time augmentation of the best checkpoint (summary["tta"], engine.tta.TTAResult)."""

    views: list[TTAView]  # distinct views, in the order asked for
    top1: float  # merged: mean of the views' softmax probabilities
    top5: float
    count: int
    cost: int  # forward passes per image relative to a plain evaluation
    requested: int  # views asked for, duplicates included


def tta_scores(t: dict[str, Any] | None) -> TTAScores | None:
    """A run's TTA result (its summary's `tta`), or None when it ran without TTA (or the entry is
    unreadable)."""
    if not isinstance(t, dict):
        return None
    try:
        views = [TTAView(str(v["view"]), float(v["top1"]), float(v["top5"])) for v in t["views"]]
        return TTAScores(
            views,
            float(t["top1"]),
            float(t["top5"]),
            int(t["count"]),
            int(t["cost"]),
            int(t.get("requested", len(views))),
        )
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class EvalData:
    run_dir: Path
    confusion: np.ndarray  # int [C, C], row = true class, column = predicted
    class_names: list[str]
    coarse_names: list[str]
    fine_to_coarse: np.ndarray  # int [C]
    ap: np.ndarray  # [C], NaN for a class absent from the test set
    auc: np.ndarray
    macro_ap: float
    macro_auc: float
    micro_ap: float
    micro_auc: float
    grid: np.ndarray  # [G] recall (PR) / false-positive rate (ROC) grid
    pr_precision: np.ndarray  # [C, G]
    roc_tpr: np.ndarray  # [C, G]
    micro_pr: np.ndarray  # [G]
    micro_roc: np.ndarray  # [G]
    summary: RunSummary
    warnings: list[str] = field(default_factory=list)  # e.g. a damaged summary.json
    # the dashboard's own evaluation of best.pt (no_results.evaluate_best), when eval.npz is its
    report: dict[str, Any] | None = None
    predictions: Predictions | None = None  # per test image (error_analysis)
    stored_images: np.ndarray | None = None  # uint8 [N, 3, 32, 32]: a synthetic run's test set

    @property
    def synthetic(self) -> bool:
        return self.summary.synthetic or self.summary.dataset == "synthetic"

    @property
    def tta(self) -> TTAScores | None:
        if self.report is not None and len(self.report.get("views") or []) > 1:
            return tta_scores(self.report)
        return tta_scores(self.summary.tta)

    @property
    def support(self) -> np.ndarray:
        return self.confusion.sum(axis=1)

    @property
    def macro_pr(self) -> np.ndarray:
        present = ~np.isnan(self.ap)
        return self.pr_precision[present].mean(axis=0)

    @property
    def macro_roc(self) -> np.ndarray:
        present = ~np.isnan(self.ap)
        return self.roc_tpr[present].mean(axis=0)

    def coarse_confusion(self) -> np.ndarray:
        """The [20, 20] superclass confusion: fine counts summed by (true, predicted) superclass."""
        k = len(self.coarse_names)
        out = np.zeros((k, k), dtype=np.int64)
        f2c = self.fine_to_coarse
        rows = np.broadcast_to(f2c[:, None], self.confusion.shape)
        cols = np.broadcast_to(f2c[None, :], self.confusion.shape)
        np.add.at(out, (rows, cols), self.confusion)
        return out

    def calibration(self) -> Reliability | None:
        """Reliability bins and ECE of the predictions (None without predictions)."""
        p = self.predictions
        return None if p is None else reliability(p.confidence, ~p.wrong)

    def accuracy(self) -> float:
        total = self.confusion.sum()
        return float(np.trace(self.confusion) / total) if total else float("nan")


def row_normalise(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (a row with no samples stays zero)."""
    sums = matrix.sum(axis=1, keepdims=True).astype(np.float64)
    return np.divide(matrix, sums, out=np.zeros(matrix.shape), where=sums > 0)


def most_confused(matrix: np.ndarray, top: int = 20) -> list[Pair]:
    """The largest off-diagonal cells, by count, then by share of the true class."""
    rates = row_normalise(matrix)
    off = matrix.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    flat = np.argsort(-(off.ravel() * 1e6 + rates.ravel()), kind="stable")[:top]
    pairs = []
    for idx in flat:
        t, p = divmod(int(idx), matrix.shape[1])
        if off[t, p] == 0:
            break
        pairs.append(Pair(t, p, int(off[t, p]), float(rates[t, p])))
    return pairs


def fit_name(name: str, width: int, lines: int = 2) -> str:
    """`name` in at most `lines` lines of `width` columns ("\n" between them): as it is when it
    fits one line, else wrapped at its `_` and spaces, its longest words cut to a prefix and `.`
    until it fits (`large_natural_outdoor_scenes`, 12 -> "large nat.\noutd. scenes")."""
    width = max(width, 4)
    if len(name) <= width:
        return name
    words = name.replace("_", " ").split()
    while True:
        wrapped = textwrap.wrap(" ".join(words), width, break_long_words=False)
        if len(wrapped) <= lines and all(len(line) <= width for line in wrapped):
            return "\n".join(wrapped)
        k = max(range(len(words)), key=lambda i: len(words[i]))
        word = words[k].rstrip(".-")
        if len(word) <= 2:  # nothing left to shorten: cut
            return " ".join(words)[: width - 1] + "…"
        words[k] = word[:-1].rstrip("-") + "."  # `man-made` -> `man-m.` -> `man.`


def micro_curves(
    probs: np.ndarray, labels: np.ndarray, grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Micro-averaged (all classes pooled, one-vs-rest) curves on `grid`.

    probs: float [N, C]; labels: int [N]. Returns (interpolated precision at recall = grid,
    true-positive rate at false-positive rate = grid).
    """
    n, c = probs.shape
    scores = probs.astype(np.float32).ravel()
    onehot = np.zeros((n, c), dtype=bool)
    onehot[np.arange(n), labels] = True
    truth = onehot.ravel()
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], truth[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # tied scores form one threshold
    tp = np.cumsum(y)[last].astype(np.float64)
    fp = (last + 1) - tp
    pos, neg = max(int(y.sum()), 1), max(len(y) - int(y.sum()), 1)
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / pos
    best = np.maximum.accumulate(precision[::-1])[::-1]  # best precision at recall >= r
    pr = np.interp(grid, np.r_[0.0, recall], np.r_[best[0], best])
    roc = np.interp(grid, np.r_[0.0, fp / neg], np.r_[0.0, tp / pos])
    return pr, roc


def load_eval(run_dir: Path) -> EvalData:
    """Read `run_dir/eval.npz` and the run's summary (engine.outcome). Raises EvalDataError; a
    damaged summary is a warning (`EvalData.warnings`), the run's id standing in for it."""
    run_dir = Path(run_dir)
    path = run_dir / EVAL_FILE
    d = _read_arrays(path)
    _check_arrays(path, d)
    warnings: list[str] = []
    try:
        summary = read_summary(run_dir, warnings.append)
    except SummaryError as exc:
        warnings.append(str(exc))
        summary = None
    grid = d["curve_grid"].astype(np.float64)
    if "probs" in d and "labels" in d:
        micro_pr, micro_roc = micro_curves(d["probs"], d["labels"].astype(np.int64), grid)
    else:
        micro_pr = micro_roc = np.full_like(grid, np.nan)
    return EvalData(
        run_dir=run_dir,
        confusion=d["confusion"].astype(np.int64),
        class_names=[str(x) for x in d["class_names"]],
        coarse_names=[str(x) for x in d["coarse_names"]],
        fine_to_coarse=d["fine_to_coarse"].astype(np.int64),
        ap=d["ap"].astype(np.float64),
        auc=d["auc"].astype(np.float64),
        macro_ap=float(d["macro_ap"]),
        macro_auc=float(d["macro_auc"]),
        micro_ap=float(d["micro_ap"]),
        micro_auc=float(d["micro_auc"]),
        grid=grid,
        pr_precision=d["pr_precision"].astype(np.float64),
        roc_tpr=d["roc_tpr"].astype(np.float64),
        micro_pr=micro_pr,
        micro_roc=micro_roc,
        summary=summary or RunSummary(run_id=run_dir.name),
        warnings=warnings,
        report=dashboard_report(run_dir),
        predictions=predictions_of(d),
        stored_images=d.get("test_images"),
    )


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file (no pickles). Raises EvalDataError."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise EvalDataError(path, "missing: the run has no test results") from None
    except EOFError:
        raise EvalDataError(path, "empty") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise EvalDataError(path, _why(exc)) from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise EvalDataError(path, "a single array, not an .npz archive")
    try:
        with loaded as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise EvalDataError(path, _why(exc)) from None


def _why(exc: BaseException) -> str:
    """A reading error in words: a truncated zip, a corrupt member, refused pickled data."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, zipfile.BadZipFile) and "not a zip file" in text:
        return "truncated zip, or not a zip file"
    if "pickled" in text:
        return "not an .npz archive: pickled data, refused"
    return text


_ARRAYS = (
    "confusion",
    "class_names",
    "coarse_names",
    "fine_to_coarse",
    "ap",
    "auc",
    "macro_ap",
    "macro_auc",
    "micro_ap",
    "micro_auc",
    "curve_grid",
    "pr_precision",
    "roc_tpr",
)


def _check_arrays(path: Path, d: dict[str, np.ndarray]) -> None:
    """The arrays an evaluation holds, of consistent shapes, their classes in range."""
    missing = [k for k in _ARRAYS if k not in d]
    if missing:
        raise EvalDataError(path, f"not a cifar-tui evaluation: no {', '.join(missing)}")
    problem = _shape_problem(d) or _range_problem(d)
    if problem:
        raise EvalDataError(path, problem)


def _shape_problem(d: dict[str, np.ndarray]) -> str | None:
    confusion, grid = d["confusion"], d["curve_grid"]
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or not confusion.size:
        return f"confusion is {confusion.shape}, not a square matrix"
    if grid.ndim != 1:
        return f"curve_grid is {grid.shape}, not a list"
    c, g, k = len(confusion), len(grid), max(d["coarse_names"].size, 1)
    wanted: dict[str, tuple[int, ...]] = {"class_names": (c,), "fine_to_coarse": (c,)}
    wanted |= {"ap": (c,), "auc": (c,)}
    wanted |= {"coarse_names": (k,), "pr_precision": (c, g), "roc_tpr": (c, g)}
    wanted |= {name: () for name in ("macro_ap", "macro_auc", "micro_ap", "micro_auc")}
    if "probs" in d and "labels" in d:
        wanted |= {"probs": (len(d["labels"]), c), "labels": (len(d["labels"]),)}
    n = len(d["labels"]) if "labels" in d and d["labels"].ndim == 1 else None
    for name in (*PREDICTION_KEYS, "test_images"):
        if name in d and n is None:
            return f"{name} without labels"
    if n is not None:
        top = min(5, c)
        shapes = {"pred_index": (n,), "top5_classes": (n, top), "top5_probs": (n, top)}
        shapes |= {"losses": (n,), "test_images": (n, 3, 32, 32), "labels": (n,)}
        wanted |= {k: v for k, v in shapes.items() if k in d}
    if "test_images" in d and d["test_images"].dtype != np.uint8:
        return f"test_images holds {d['test_images'].dtype}, not uint8 pixels"
    for name, shape in wanted.items():
        if d[name].shape != shape:
            return f"{name} is {d[name].shape}, not {shape} for {c} classes"
    for name in wanted:
        kinds = "iu" if name in _INDICES else "" if "names" in name else "iuf"
        if kinds and d[name].dtype.kind not in kinds:
            return f"{name} holds {d[name].dtype}, not {'integers' if kinds == 'iu' else 'numbers'}"
    return None


_INDICES = ("confusion", "fine_to_coarse", "labels", "pred_index", "top5_classes", "test_images")


def _range_problem(d: dict[str, np.ndarray]) -> str | None:
    c, k = len(d["confusion"]), len(d["coarse_names"])
    if (d["confusion"] < 0).any():
        return "confusion holds negative counts"
    for name, top in (("fine_to_coarse", k), ("labels", c), ("top5_classes", c)):
        values = d.get(name)
        if values is not None and values.size and not ((values >= 0) & (values < top)).all():
            return f"{name} holds values outside [0, {top})"
    index = d.get("pred_index")
    if index is not None and index.size and (index < 0).any():
        return "pred_index holds negative positions"
    return None
