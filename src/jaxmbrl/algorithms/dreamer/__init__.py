"""Dreamer: an RSSM world model, an actor-critic learned in imagination, or latent
planning with `jaxmbrl.planning` (PlaNet), compiled end to end."""
from jaxmbrl.algorithms.dreamer._dreamer import (
    CONTROLLERS,
    Config,
    HParams,
    Metrics,
    State,
    Step,
    Train,
    make_train,
    sample_sequences,
    supports,
)

__all__ = [
    "CONTROLLERS",
    "Config",
    "HParams",
    "Metrics",
    "State",
    "Step",
    "Train",
    "make_train",
    "sample_sequences",
    "supports",
]
