"""Shared types.

Shape legend used in docstrings across the package:
  B  batch (minibatch, envs or candidates)      O  observation dim (flattened)
  A  action dim (continuous) or num_actions (one-hot)
  E  ensemble members                           H  planning horizon
  N  candidate action sequences                 P  particles per candidate
  T  time / sequence length                     C  buffer capacity
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol, Tuple

import jax

PRNGKey = jax.Array
Array = jax.Array
Params = Any
PyTree = Any


class Transition(NamedTuple):
    """One environment transition (unbatched) or a batch of them (leading B).

    `next_obs` is always the true successor of `obs`: at the end of an episode it is
    gymnax's `info["final_observation"]`, never the observation after the reset.
    `terminated` (a true terminal state: no bootstrapping) is kept apart from
    `truncated` (a time limit: bootstrap through it).
    """

    obs: Array  # [..., *obs_shape]
    action: Array  # [..., A] float (continuous) or [...] int32 (discrete)
    reward: Array  # [...] float32
    next_obs: Array  # [..., *obs_shape]
    terminated: Array  # [...] bool
    truncated: Array  # [...] bool


class ModelFn(Protocol):
    """`model_fn(key, params, obs, action) -> (next_obs, reward, terminated)`.

    Unbatched: `obs` is one observation (or, for oracle models, one env state pytree),
    `action` one action. Planners vmap it over candidates and particles.
    """

    def __call__(
        self, key: PRNGKey, params: Params, obs: PyTree, action: Array
    ) -> Tuple[PyTree, Array, Array]: ...


class RewardFn(Protocol):
    """`reward_fn(obs, action, next_obs) -> reward` (unbatched; scalar float32)."""

    def __call__(self, obs: Array, action: Array, next_obs: Array) -> Array: ...


class TerminationFn(Protocol):
    """`termination_fn(obs, action, next_obs) -> terminated` (unbatched; scalar bool)."""

    def __call__(self, obs: Array, action: Array, next_obs: Array) -> Array: ...


StepFn = Callable[..., Any]
