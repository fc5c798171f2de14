"""Classification metrics: top-k, confusion matrix, per-class precision-recall and ROC."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

CURVE_POINTS = 101  # PR and ROC curves are stored on a fixed grid of this many points


def topk_correct(
    logits: torch.Tensor, target: torch.Tensor, ks: tuple[int, ...] = (1, 5)
) -> torch.Tensor:
    """Number of samples whose target is among the k highest logits, for each k.

    logits: float [B, C]; target: int64 [B]. Returns int64 [len(ks)] (stays on the device).
    """
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices  # [B, kmax]
    hits = top.eq(target[:, None])
    return torch.stack([hits[:, : min(k, kmax)].any(dim=1).sum() for k in ks])


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """int64 [C, C]; row = true class, column = predicted class."""
    index = target.long() * num_classes + pred.long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def per_class_curves(probs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """One-vs-rest precision-recall and ROC for every class (scikit-learn).

    probs: float [N, C] class probabilities; labels: int [N].
    Returns per-class `ap` and `auc` [C], macro and micro averages, and curves on a fixed grid:
    `pr_precision` [C, G] (interpolated precision at recall = linspace(0, 1, G)) and
    `roc_tpr` [C, G] (true-positive rate at false-positive rate = linspace(0, 1, G)).
    """
    from sklearn.metrics import (
        average_precision_score,
        precision_recall_curve,
        roc_auc_score,
        roc_curve,
    )

    n, c = probs.shape
    onehot = np.zeros((n, c), dtype=np.int8)
    onehot[np.arange(n), labels] = 1
    grid = np.linspace(0.0, 1.0, CURVE_POINTS)
    ap = np.full(c, np.nan)
    auc = np.full(c, np.nan)
    pr = np.zeros((c, CURVE_POINTS))
    roc = np.zeros((c, CURVE_POINTS))
    for k in range(c):
        y, s = onehot[:, k], probs[:, k]
        if y.min() == y.max():  # a class absent from this split has no curve
            continue
        ap[k] = average_precision_score(y, s)
        auc[k] = roc_auc_score(y, s)
        precision, recall, _ = precision_recall_curve(y, s)
        # interpolated precision: best precision at any recall >= r (recall is decreasing here)
        best = np.maximum.accumulate(precision)
        pr[k] = np.interp(grid, recall[::-1], best[::-1])
        fpr, tpr, _ = roc_curve(y, s)
        roc[k] = np.interp(grid, fpr, tpr)
    present = ~np.isnan(ap)
    return {
        "ap": ap,
        "auc": auc,
        "macro_ap": float(ap[present].mean()) if present.any() else float("nan"),
        "macro_auc": float(auc[present].mean()) if present.any() else float("nan"),
        "micro_ap": float(average_precision_score(onehot.ravel(), probs.ravel())),
        "micro_auc": float(roc_auc_score(onehot.ravel(), probs.ravel())),
        "curve_grid": grid,
        "pr_precision": pr,
        "roc_tpr": roc,
    }
