"""Learning-rate schedules: implementations take (total_steps, steps_per_epoch) and return
the factor on the base rate for each step (and, for onecycle, the momentum).
"""

from __future__ import annotations

from engine.catalog.spec import Catalog, Spec, param

SCHEDULES = Catalog(
    "schedule",
    [
        Spec(
            "constant",
            "linear warmup, then a constant rate",
            "engine.schedule:constant",
            params=(param("warmup_epochs", "float", 0.0, limit=">= 0"),),
        ),
        Spec(
            "cosine",
            "linear warmup, then cosine decay to min_lr_ratio x lr",
            "engine.schedule:cosine",
            params=(
                param("warmup_epochs", "float", 5.0, limit=">= 0"),
                param("min_lr_ratio", "float", 0.0, limit="0..1"),
            ),
        ),
        Spec(
            "multistep",
            "linear warmup, then the rate times gamma at each milestone epoch",
            "engine.schedule:multistep",
            params=(
                param("warmup_epochs", "float", 0.0, limit=">= 0"),
                param("milestones", "list[float]", [60.0, 120.0, 160.0], limit=">= 0"),
                param("gamma", "float", 0.2, limit="0..1"),
            ),
        ),
        Spec(
            "onecycle",
            "one-cycle (Smith 2018): cosine up from lr/div_factor to lr, then down to "
            "lr/final_div; momentum the other way",
            "engine.schedule:onecycle",
            params=(
                param("pct_start", "float", 0.3, limit="0..1"),
                param("div_factor", "float", 25.0, limit=">= 1"),
                param("final_div_factor", "float", 10000.0, limit=">= 1"),
                param(
                    "cycle_momentum",
                    "bool",
                    True,
                    doc="SGD's momentum or Adam's beta1 from max_momentum down to base_momentum "
                    "as the rate rises, and back (replacing the optimizer's own)",
                ),
                param("base_momentum", "float", 0.85, limit="0..1"),
                param("max_momentum", "float", 0.95, limit="0..1"),
            ),
        ),
        Spec(
            "step",
            "linear warmup, then the rate times gamma every step_epochs epochs",
            "engine.schedule:step",
            params=(
                param("warmup_epochs", "float", 0.0, limit=">= 0"),
                param("step_epochs", "float", 60.0, limit="> 0"),
                param("gamma", "float", 0.2, limit="0..1"),
            ),
        ),
    ],
)
