"""Environments: gymnax construction, specs, adapters, known reward/termination, oracles."""
from jaxmbrl.envs._known import reward_fn, termination_fn
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

__all__ = [
    "EnvSpec",
    "UnknownEnvError",
    "batch_reset",
    "batch_step",
    "encode_action",
    "make",
    "random_action",
    "random_rollout",
    "register",
    "registered_ids",
    "reset",
    "reward_fn",
    "rollout",
    "spec_of",
    "step",
    "termination_fn",
    "true_model",
]
