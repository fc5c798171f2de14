"""Losses: implementations take (num_classes, class_counts) and return a loss module."""

from __future__ import annotations

from engine.catalog.spec import Catalog, Spec, param

LOSSES = Catalog(
    "loss",
    [
        Spec(
            "class_balanced",
            "class-balanced CE or focal loss, weights from the effective number of samples "
            "(Cui 2019)",
            "engine.losses:class_balanced",
            params=(
                param("beta", "float", 0.9999, limit="0..1"),
                param("base", "str", "cross_entropy", choices=("cross_entropy", "focal")),
                param("gamma", "float", 2.0, limit=">= 0"),
                param("label_smoothing", "float", 0.0, limit="0..1"),
            ),
        ),
        Spec(
            "cross_entropy",
            "cross-entropy, optionally label-smoothed; soft targets for MixUp/CutMix",
            "engine.losses:cross_entropy",
            params=(param("label_smoothing", "float", 0.0, limit="0..1"),),
        ),
        Spec(
            "focal",
            "multi-class focal loss -sum q_c (1-p_c)^gamma log p_c (Lin et al. 2017); gamma 0 = CE",
            "engine.losses:focal",
            params=(
                param("gamma", "float", 2.0, limit=">= 0"),
                param("label_smoothing", "float", 0.0, limit="0..1"),
                param("alpha", "list[float] | None", None),
            ),
        ),
        Spec(
            "ohem",
            "online hard example mining: CE averaged over the hardest keep_ratio of each batch",
            "engine.losses:ohem",
            params=(
                param("keep_ratio", "float", 0.7, limit="(0, 1]"),
                param("label_smoothing", "float", 0.0, limit="0..1"),
            ),
        ),
    ],
)
