"""PETS (Chua et al. 2018): MPC over a probabilistic ensemble, compiled end to end."""
from jaxmbrl.algorithms.pets._pets import (
    CONTINUOUS_PLANNERS,
    DISCRETE_PLANNERS,
    PLANNERS,
    Config,
    HParams,
    Metrics,
    State,
    Train,
    make_train,
)

__all__ = [
    "CONTINUOUS_PLANNERS",
    "DISCRETE_PLANNERS",
    "PLANNERS",
    "Config",
    "HParams",
    "Metrics",
    "State",
    "Train",
    "make_train",
]
