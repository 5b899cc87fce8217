"""MBPO (Janner et al. 2019): SAC on branched short model rollouts, compiled end to end."""
from jaxmbrl.algorithms.mbpo._mbpo import (
    EXPLORATIONS,
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
    bonus_rollout,
    branched_rollout,
    disagreement_step,
    model_buffer_add,
    model_buffer_init,
    model_buffer_sample,
    rollout_length,
)

__all__ = [
    "EXPLORATIONS",
    "Config",
    "HParams",
    "Metrics",
    "ModelBuffer",
    "State",
    "Train",
    "bonus_rollout",
    "branched_rollout",
    "default_model",
    "disagreement_step",
    "make_train",
    "model_buffer_add",
    "model_buffer_init",
    "model_buffer_sample",
    "rollout_length",
    "supports",
]
