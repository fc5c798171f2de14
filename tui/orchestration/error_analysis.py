"""Which test images lie behind a number of the Results screen, numpy only: a confusion cell
(fine or superclass), a class's false positives or false negatives, the top losses; sorted by
confidence. Read from eval.npz's predictions (`engine.predictions`), or derived from its `probs`
for a file written before them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.predictions import KEYS, top_k

NO_PREDICTIONS = "this run's eval.npz predates saved predictions and has no probabilities"
DERIVED = "predictions derived from the float16 probabilities (eval.npz predates saved ones)"


@dataclass(frozen=True)
class Predictions:
    """One row per test image, in test order."""

    index: np.ndarray  # int [N]: the image's position in the test file
    labels: np.ndarray  # int [N] true class
    top5_classes: np.ndarray  # int [N, 5], most probable first
    top5_probs: np.ndarray  # float [N, 5]
    losses: np.ndarray  # float [N] cross-entropy: -log p(true class)
    derived: bool = False  # from `probs` (see DERIVED)

    @property
    def pred(self) -> np.ndarray:
        return self.top5_classes[:, 0].astype(np.int64)

    @property
    def confidence(self) -> np.ndarray:
        return self.top5_probs[:, 0].astype(np.float64)

    @property
    def wrong(self) -> np.ndarray:
        return self.pred != self.labels

    def __len__(self) -> int:
        return len(self.labels)


def predictions_of(arrays: dict[str, np.ndarray]) -> Predictions | None:
    """The predictions of an eval.npz's arrays (already shape-checked), or None without any."""
    if "labels" not in arrays:
        return None
    labels = arrays["labels"].astype(np.int64)
    if all(k in arrays for k in KEYS):
        return Predictions(
            arrays["pred_index"].astype(np.int64),
            labels,
            arrays["top5_classes"].astype(np.int64),
            arrays["top5_probs"].astype(np.float64),
            arrays["losses"].astype(np.float64),
        )
    if "probs" not in arrays:
        return None
    probs = arrays["probs"].astype(np.float32)
    classes, top_probs = top_k(probs)
    true_p = probs[np.arange(len(labels)), labels].astype(np.float64)
    losses = -np.log(np.maximum(true_p, np.finfo(np.float16).smallest_subnormal))
    return Predictions(
        np.arange(len(labels)),
        labels,
        classes.astype(np.int64),
        top_probs.astype(np.float64),
        losses,
        derived=True,
    )


@dataclass(frozen=True)
class Selection:
    """Some test images, as rows of `Predictions`, in the order they are shown."""

    title: str  # what they are, e.g. "true apple, predicted pear"
    rows: np.ndarray  # int [n]
    empty: str  # what to say when there are none
    order: str = "confidence, highest first"


def by_confidence(p: Predictions, rows: np.ndarray, highest_first: bool = True) -> np.ndarray:
    """`rows` by the confidence of their prediction; ties by test index (stable either way)."""
    rows = np.asarray(rows, dtype=np.int64)
    conf = p.confidence[rows]
    key = -conf if highest_first else conf
    return rows[np.lexsort((p.index[rows], key))]


def cell(p: Predictions, names: list[str], true: int, pred: int) -> Selection:
    """The test images of class `true` predicted as `pred` (the diagonal: the correct ones)."""
    rows = np.flatnonzero((p.labels == true) & (p.pred == pred))
    return Selection(
        f"true {names[true]}, predicted {names[pred]}",
        by_confidence(p, rows),
        f"no test image of {names[true]} was predicted as {names[pred]}",
    )


def superclass_cell(
    p: Predictions, coarse_names: list[str], fine_to_coarse: np.ndarray, true: int, pred: int
) -> Selection:
    """The test images of superclass `true` predicted as a class of superclass `pred`."""
    f2c = np.asarray(fine_to_coarse)
    rows = np.flatnonzero((f2c[p.labels] == true) & (f2c[p.pred] == pred))
    a, b = coarse_names[true], coarse_names[pred]
    return Selection(
        f"true superclass {a}, predicted superclass {b}",
        by_confidence(p, rows),
        f"no test image of superclass {a} was predicted in {b}",
    )


def false_positives(p: Predictions, names: list[str], k: int) -> Selection:
    """Images predicted as class `k` that are not of it."""
    rows = np.flatnonzero((p.pred == k) & (p.labels != k))
    return Selection(
        f"false positives of {names[k]}: predicted {names[k]}, another class",
        by_confidence(p, rows),
        f"no false positives: every image predicted as {names[k]} is one",
    )


def false_negatives(p: Predictions, names: list[str], k: int) -> Selection:
    """Images of class `k` predicted as another class."""
    rows = np.flatnonzero((p.labels == k) & (p.pred != k))
    return Selection(
        f"false negatives of {names[k]}: {names[k]}, predicted as another class",
        by_confidence(p, rows),
        f"no false negatives: every test image of {names[k]} was recognised",
    )


def top_losses(p: Predictions, count: int | None = None) -> Selection:
    """The misclassified images by loss, highest first (lowest probability of the true class;
    ties by test index); the first `count` of them."""
    rows = np.flatnonzero(p.wrong)
    rows = rows[np.lexsort((p.index[rows], -p.losses[rows]))][:count]
    return Selection(
        "top losses: misclassified test images, highest loss first",
        rows,
        "no misclassified test image",
        order="loss, highest first",
    )
