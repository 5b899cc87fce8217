"""Environments: gymnax construction, specs, adapters, known reward/termination, oracles."""
from jaxmbrl.envs._dyna_maze import DynaMaze
from jaxmbrl.envs._known import known_ids, register_known, reward_fn, termination_fn
from jaxmbrl.envs._make import (
    EnvSpec,
    UnknownEnvError,
    batch_reset,
    batch_step,
    encode_action,
    make,
    random_action,
    random_rollout,
    register,
    registered_ids,
    reset,
    rollout,
    spec_of,
    step,
    true_model,
)

register("DynaMaze", DynaMaze)

__all__ = [
    "DynaMaze",
    "EnvSpec",
    "UnknownEnvError",
    "batch_reset",
    "batch_step",
    "encode_action",
    "known_ids",
    "make",
    "random_action",
    "random_rollout",
    "register",
    "register_known",
    "registered_ids",
    "reset",
    "reward_fn",
    "rollout",
    "spec_of",
    "step",
    "termination_fn",
    "true_model",
]
