"""Metrics (engine.metrics) against hand cases and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine import metrics


def test_topk_matches_a_hand_case():
    logits = torch.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
    target = torch.tensor([2, 0, 0])
    assert metrics.topk_correct(logits, target, (1, 2, 3)).tolist() == [1, 2, 3]


def test_confusion_matrix_rows_are_true_classes_like_sklearn():
    from sklearn.metrics import confusion_matrix as sk_confusion

    rng = np.random.default_rng(0)
    true = rng.integers(0, 7, 500)
    pred = np.where(rng.random(500) < 0.6, true, rng.integers(0, 7, 500))
    ours = metrics.confusion_matrix(torch.from_numpy(pred), torch.from_numpy(true), 7).numpy()
    np.testing.assert_array_equal(ours, sk_confusion(true, pred, labels=range(7)))
    # one hand case: true 0 predicted 1 lands in row 0, column 1
    one = metrics.confusion_matrix(torch.tensor([1]), torch.tensor([0]), 3)
    assert one[0, 1] == 1 and one.sum() == 1


def test_per_class_ap_auc_match_sklearn_and_curves_are_sane():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(1)
    n, c = 600, 4
    labels = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 2.0 * np.eye(c)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    out = metrics.per_class_curves(probs, labels)
    for k in range(c):
        y = (labels == k).astype(int)
        assert out["ap"][k] == pytest.approx(average_precision_score(y, probs[:, k]))
        assert out["auc"][k] == pytest.approx(roc_auc_score(y, probs[:, k]))
    assert out["macro_auc"] == pytest.approx(out["auc"].mean())
    assert out["roc_tpr"].shape == (c, metrics.CURVE_POINTS)
    assert np.all(np.diff(out["roc_tpr"], axis=1) >= -1e-12)  # ROC is non-decreasing
    assert np.all(np.diff(out["pr_precision"], axis=1) <= 1e-12)  # interpolated PR non-increasing
    assert out["roc_tpr"][:, -1] == pytest.approx(1.0)


def test_absent_class_gets_nan_not_a_crash():
    probs = np.full((4, 3), 1 / 3)
    out = metrics.per_class_curves(probs, np.array([0, 1, 0, 1]))
    assert math.isnan(out["ap"][2]) and not math.isnan(out["macro_ap"])


@pytest.mark.parametrize("dataset", ["synthetic", "cifar100"])
def test_eval_file_keeps_the_predictions(tmp_path, dataset: str):
    """eval.npz's predictions are torch's top-5 and per-image cross-entropy of the logits; a
    synthetic test set's images are kept, a CIFAR-100 one's are not (the tui reads the file)."""
    from engine.calibration import expected_calibration_error
    from engine.data import DataBundle, ImageSet
    from engine.evaluation import write_eval_file

    g = torch.Generator().manual_seed(0)
    n = 300
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % 100
    test = ImageSet(images, labels)
    names = [f"c{k}" for k in range(100)]
    coarse = [f"g{k}" for k in range(20)]
    data = DataBundle(dataset, test, test, test, names, coarse, [k // 5 for k in range(100)],
                      (0.5,) * 3, (0.2,) * 3)  # fmt: skip
    logits = torch.randn(n, 100, generator=g) * 3
    out = write_eval_file(tmp_path / "eval.npz", logits, data)
    with np.load(tmp_path / "eval.npz", allow_pickle=False) as z:
        np.testing.assert_array_equal(z["pred_index"], np.arange(n))
        top = torch.softmax(logits, 1).topk(5, dim=1)
        np.testing.assert_array_equal(z["top5_classes"], top.indices.numpy())
        np.testing.assert_allclose(z["top5_probs"], top.values.numpy(), rtol=1e-6)
        ce = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
        np.testing.assert_allclose(z["losses"], ce.numpy(), rtol=1e-5)
        if dataset == "synthetic":
            np.testing.assert_array_equal(z["test_images"], images.numpy())
        else:
            assert "test_images" not in z.files
        probs = torch.softmax(logits, 1).numpy()
        assert out["ece"] == pytest.approx(expected_calibration_error(probs, labels.numpy()))
        assert int(z["confusion"].sum()) == n and z["probs"].dtype == np.float16
