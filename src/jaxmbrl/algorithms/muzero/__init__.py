"""MuZero: representation, dynamics and prediction networks learned from trajectories of
tree searches (mctx's Gumbel MuZero or pUCT) over their own latent model, compiled end to end."""
from jaxmbrl.algorithms.muzero._muzero import (
    SELECTIONS,
    Config,
    HParams,
    Metrics,
    State,
    Step,
    Targets,
    Train,
    make_train,
    supports,
    value_targets,
)

__all__ = [
    "Config",
    "HParams",
    "Metrics",
    "SELECTIONS",
    "State",
    "Step",
    "Targets",
    "Train",
    "make_train",
    "supports",
    "value_targets",
]
