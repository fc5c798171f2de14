"""The test-set predictions eval.npz keeps for error analysis, numpy only: per test image, its
position in the test file, its five most probable classes with their probabilities, and its
cross-entropy loss. The dashboard derives the same from `probs` for files written before."""

from __future__ import annotations

import numpy as np

TOP_K = 5
KEYS = ("pred_index", "top5_classes", "top5_probs", "losses")


def top_k(probs: np.ndarray, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray]:
    """The `k` most probable classes of each row (int16 [N, k], most probable first; a tie goes
    to the lower class) and their probabilities (float32 [N, k])."""
    p = np.asarray(probs, dtype=np.float32)
    k = min(k, p.shape[1])
    order = np.argsort(-p, axis=1, kind="stable")[:, :k]
    return order.astype(np.int16), np.take_along_axis(p, order, axis=1)


def prediction_arrays(probs: np.ndarray, losses: np.ndarray) -> dict[str, np.ndarray]:
    """eval.npz's prediction entries from float32 probabilities [N, C] and losses [N]. The test
    set is always complete and in file order, so an image's position is its row."""
    classes, top_probs = top_k(probs)
    return {
        "pred_index": np.arange(len(probs), dtype=np.int32),
        "top5_classes": classes,
        "top5_probs": top_probs,
        "losses": np.asarray(losses, dtype=np.float32),
    }
