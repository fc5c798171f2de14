"""ECE and reliability bins (engine.calibration) against a hand computation and a slow
per-sample loop; the stored predictions (engine.predictions) against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from engine import calibration
from engine.predictions import prediction_arrays, top_k


def test_ece_of_a_hand_worked_case():
    # 15 bins of width 1/15: 0.95 -> bin 14, 0.30 -> bin 4, 0.50 -> bin 7, 0.05 -> bin 0
    conf = np.array([0.95, 0.95, 0.30, 0.50, 0.05])
    correct = np.array([True, False, True, True, False])
    rel = calibration.reliability(conf, correct)
    # |0.5 - 0.95| * 2/5 + |1 - 0.3| * 1/5 + |1 - 0.5| * 1/5 + |0 - 0.05| * 1/5
    assert rel.ece == pytest.approx(0.18 + 0.14 + 0.10 + 0.01, abs=1e-12)
    assert rel.counts.tolist() == [1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2]
    assert rel.accuracy[14] == 0.5 and rel.confidence[14] == pytest.approx(0.95)
    assert np.isnan(rel.accuracy[1]) and np.isnan(rel.confidence[1])


def test_bins_are_closed_on_the_right_and_zero_goes_first():
    edges = np.linspace(0, 1, 16)
    index = calibration.bin_of(np.array([0.0, edges[1], edges[2], np.nextafter(edges[2], 1), 1.0]))
    assert index.tolist() == [0, 0, 1, 2, 14]


def _slow_reliability(conf: np.ndarray, correct: np.ndarray, bins: int) -> tuple[list, float]:
    """One sample at a time into (m/M, (m+1)/M], the textbook definition."""
    members: list[list[int]] = [[] for _ in range(bins)]
    for i, c in enumerate(conf):
        for m in range(bins):
            if m / bins < c <= (m + 1) / bins or (m == 0 and c == 0):
                members[m].append(i)
                break
    ece = 0.0
    rows: list[tuple[int, float | None, float | None]] = []
    for m in range(bins):
        if not members[m]:
            rows.append((0, None, None))
            continue
        acc = sum(bool(correct[i]) for i in members[m]) / len(members[m])
        mean = sum(float(conf[i]) for i in members[m]) / len(members[m])
        ece += abs(acc - mean) * len(members[m]) / len(conf)
        rows.append((len(members[m]), acc, mean))
    return rows, ece


@pytest.mark.parametrize("bins", [15, 7])
def test_reliability_matches_a_per_sample_loop(bins: int):
    rng = np.random.default_rng(bins)
    logits = rng.normal(size=(700, 10)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = rng.integers(0, 10, 700)
    rel = calibration.reliability_of_probs(probs, labels, bins)
    rows, ece = _slow_reliability(probs.max(1), probs.argmax(1) == labels, bins)
    assert rel.ece == pytest.approx(ece, abs=1e-12)
    assert calibration.expected_calibration_error(probs, labels, bins) == rel.ece
    for m, (count, acc, mean) in enumerate(rows):
        assert rel.counts[m] == count
        if count:
            assert rel.accuracy[m] == pytest.approx(acc) and rel.confidence[m] == pytest.approx(
                mean
            )


def test_predictions_match_brute_force():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(100), size=50).astype(np.float32)
    losses = rng.random(50).astype(np.float32)
    out = prediction_arrays(probs, losses)
    assert out["pred_index"].tolist() == list(range(50))
    for i in range(50):
        want = sorted(range(100), key=lambda k: (-probs[i, k], k))[:5]
        assert out["top5_classes"][i].tolist() == want
        np.testing.assert_array_equal(out["top5_probs"][i], probs[i, want])
    assert out["top5_classes"].dtype == np.int16 and out["losses"].dtype == np.float32
    classes, _ = top_k(np.array([[0.2, 0.5, 0.3]]), k=5)  # fewer classes than k
    assert classes.tolist() == [[1, 2, 0]]
