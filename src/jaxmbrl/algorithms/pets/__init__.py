"""PETS (Chua et al. 2018): MPC over a probabilistic ensemble, compiled end to end."""
from jaxmbrl.algorithms.pets._pets import (
    Config,
    HParams,
    Metrics,
    State,
    Train,
    default_model,
    make_train,
    supports,
)

__all__ = ["Config", "HParams", "Metrics", "State", "Train", "default_model", "make_train", "supports"]
