"""Calibration of a classifier's confidence, numpy only (the engine's test pass writes it to the
summary; the dashboard and `cifar-tui eval` draw it): reliability bins and the expected
calibration error (ECE).

Confidence is the highest softmax probability. The [0, 1] range is cut into `bins` equal-width
bins, bin m holding the confidences in (m/M, (m+1)/M] (a confidence of 0 falls in the first), and
ECE = sum over bins of |accuracy - mean confidence| * n_bin / N (Guo et al., 2017).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ECE_BINS = 15


@dataclass(frozen=True)
class Reliability:
    """Per-bin accuracy against confidence: a reliability diagram's numbers."""

    edges: np.ndarray  # float [M + 1]
    counts: np.ndarray  # int [M]
    accuracy: np.ndarray  # float [M], NaN for an empty bin
    confidence: np.ndarray  # float [M] mean confidence, NaN for an empty bin
    ece: float  # NaN when there are no samples

    @property
    def total(self) -> int:
        return int(self.counts.sum())


def bin_of(confidence: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """The bin of each confidence: m for (m/M, (m+1)/M], 0 for a confidence of 0."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges, np.asarray(confidence, dtype=np.float64), side="left") - 1
    return np.clip(index, 0, bins - 1)


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> Reliability:
    """Bins of `confidence` (float [N], in [0, 1]), each with its share of `correct` (bool [N])."""
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    hit = np.asarray(correct, dtype=np.float64).ravel()
    index = bin_of(conf, bins)
    counts = np.bincount(index, minlength=bins)
    hits = np.bincount(index, weights=hit, minlength=bins)
    conf_sums = np.bincount(index, weights=conf, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        accuracy = np.where(counts > 0, hits / counts, np.nan)
        mean_conf = np.where(counts > 0, conf_sums / counts, np.nan)
    n = len(conf)
    gaps = np.abs(hits - conf_sums)  # = |acc - conf| * n_bin, zero for an empty bin
    ece = float(gaps.sum() / n) if n else float("nan")
    return Reliability(np.linspace(0.0, 1.0, bins + 1), counts, accuracy, mean_conf, ece)


def reliability_of_probs(
    probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> Reliability:
    """`reliability` of class probabilities (float [N, C]) against the true labels (int [N])."""
    p = np.asarray(probs)
    pred = p.argmax(axis=1)
    return reliability(p.max(axis=1), pred == np.asarray(labels), bins)


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE of class probabilities (float [N, C]) against the true labels (int [N])."""
    return reliability_of_probs(probs, labels, bins).ece
