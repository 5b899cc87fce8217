"""MBPO (Janner et al. 2019): SAC on branched short model rollouts, compiled end to end."""
from jaxmbrl.algorithms.mbpo._mbpo import Config, HParams, Metrics, State, Train, make_train
from jaxmbrl.algorithms.mbpo._rollout import (
    ModelBuffer,
    branched_rollout,
    ensemble_step,
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
    "ensemble_step",
    "make_train",
    "model_buffer_add",
    "model_buffer_init",
    "model_buffer_sample",
    "rollout_length",
]
