"""MBPO (Janner et al. 2019): SAC on branched short model rollouts, compiled end to end."""
from jaxmbrl.algorithms.mbpo._mbpo import (
    Config,
    HParams,
    Metrics,
    State,
    Train,
    default_model,
    make_train,
    supports,
)
from jaxmbrl.algorithms.mbpo._rollout import (
    ModelBuffer,
    branched_rollout,
    model_buffer_add,
    model_buffer_init,
    model_buffer_sample,
    rollout_length,
)

__all__ = [
    "Config",
    "HParams",
    "Metrics",
    "ModelBuffer",
    "State",
    "Train",
    "branched_rollout",
    "default_model",
    "make_train",
    "model_buffer_add",
    "model_buffer_init",
    "model_buffer_sample",
    "rollout_length",
    "supports",
]
