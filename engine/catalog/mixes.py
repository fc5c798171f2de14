"""Batch mixes (MixUp / CutMix): soft targets from a partner image in the batch."""

from __future__ import annotations

from engine.catalog.spec import Catalog, Spec, param

MIXES = Catalog(
    "mix",
    [
        Spec(
            "cutmix",
            "CutMix: paste a partner's box, labels by area",
            "engine.mix:cutmix",
            params=(param("alpha", "float", 1.0, limit="> 0"),),
        ),
        Spec(
            "mixup",
            "MixUp: blend with a partner image and label",
            "engine.mix:mixup",
            params=(param("alpha", "float", 1.0, limit="> 0"),),
        ),
        Spec(
            "mixup_cutmix",
            "per sample, CutMix with probability switch_prob, else MixUp",
            "engine.mix:mixup_cutmix",
            params=(
                param("mixup_alpha", "float", 0.8, limit="> 0"),
                param("cutmix_alpha", "float", 1.0, limit="> 0"),
                param("switch_prob", "float", 0.5, limit="0..1"),
            ),
        ),
    ],
)
