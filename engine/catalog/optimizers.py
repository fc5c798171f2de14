"""Optimizers (implementations take the model) and SAM variants (they wrap the optimizer).

Weight decay is applied only to weights of dimension >= 2, never to biases or norm parameters.
"""

from __future__ import annotations

from engine.catalog.spec import Catalog, Param, Spec, param


def _adam(weight_decay: float, *, beta1: float = 0.9, eps: float = 1e-8) -> tuple[Param, ...]:
    """The parameters the Adam family shares."""
    return (
        param("lr", "float", 0.001, limit="> 0"),
        param("beta1", "float", beta1, limit="0..1"),
        param("beta2", "float", 0.999, limit="0..1"),
        param("eps", "float", eps, limit="> 0"),
        param("weight_decay", "float", weight_decay, limit=">= 0"),
    )


AMSGRAD = param("amsgrad", "bool", False)


OPTIMIZERS = Catalog(
    "optimizer",
    [
        Spec(
            "adam",
            "Adam (Kingma & Ba 2015) with L2 weight decay added to the gradient, as "
            "torch.optim.Adam",
            "engine.optim:adam",
            params=(*_adam(0.0005), AMSGRAD),
        ),
        Spec(
            "adamw",
            "AdamW (Loshchilov & Hutter 2019): Adam with decoupled weight decay",
            "engine.optim:adamw",
            params=(*_adam(0.05), AMSGRAD),
        ),
        Spec(
            "radam",
            "RAdam (Liu et al. 2020): Adam with the variance of the adaptive rate rectified; "
            "decay decoupled as in its reference code",
            "engine.optim:radam",
            params=(
                *_adam(0.0005),
                param(
                    "decoupled_weight_decay",
                    "bool",
                    True,
                    doc="w *= 1 - lr * weight_decay each step; false: L2 added to the gradient",
                ),
            ),
        ),
        Spec(
            "ranger",
            "Ranger (lessw2020): RAdam with decoupled decay on centralised gradients, in "
            "Lookahead (k fast steps, then slow += alpha * (fast - slow))",
            "engine.optim:ranger",
            params=(
                *_adam(0.0005, beta1=0.95, eps=1e-5),
                param(
                    "gc",
                    "bool",
                    True,
                    doc="gradient centralisation of conv and linear kernels (Ranger since "
                    "2020); false: the 2019 Ranger",
                ),
                param("k", "int", 6, limit=">= 1"),
                param("alpha", "float", 0.5, limit="(0, 1]"),
            ),
        ),
        Spec(
            "sgd",
            "SGD with momentum (optionally Nesterov); no weight decay on biases and norm layers",
            "engine.optim:sgd",
            params=(
                param("lr", "float", 0.1, limit="> 0"),
                param("momentum", "float", 0.9, limit="0..1"),
                param("nesterov", "bool", False),
                param("weight_decay", "float", 0.0005, limit=">= 0"),
            ),
        ),
    ],
)

SAM_VARIANTS = Catalog(
    "SAM variant",
    [
        Spec(
            "asam",
            "adaptive SAM (Kwon et al. 2021): the neighbourhood scales with |w|; the "
            "write-up's 'SAM'",
            "engine.optim:asam",
            params=(param("rho", "float", 2.0, limit="> 0"),),
        ),
        Spec(
            "sam",
            "sharpness-aware minimisation (Foret et al. 2021): two passes per step",
            "engine.optim:sam",
            params=(param("rho", "float", 0.05, limit="> 0"),),
        ),
    ],
)
