"""TD-MPC2: value-guided MPPI in a learned SimNorm latent space, with a policy prior and
an ensemble of two-hot Q heads, compiled end to end."""
from jaxmbrl.algorithms.tdmpc2._tdmpc2 import (
    Config,
    HParams,
    Learner,
    Metrics,
    State,
    Step,
    Train,
    make_train,
    supports,
)

__all__ = ["Config", "HParams", "Learner", "Metrics", "State", "Step", "Train", "make_train", "supports"]
