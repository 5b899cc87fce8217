"""A "bring your own model" example: linear least-squares dynamics behind `models.Model`.

Written against the public protocol only (no ensemble code): the state is one weight
matrix, `fit` solves ridge regression in closed form on the buffer's filled rows, and
`step` is a matrix product. It is exact for linear systems such as PointMass, and small
enough to read as a template for a model of your own.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxmbrl import models
from jaxmbrl.types import Array, PRNGKey, RewardFn, TerminationFn, Transition

# A floor on the ridge penalty: one-hot actions plus the constant feature (or a
# constant observation dimension) make the normal equations singular without one.
_MIN_RIDGE = 1e-6


class LinearModelState(NamedTuple):
    """`[next_obs (flattened), reward] = features @ weights`, features `[obs, action, 1]`."""

    weights: Array  # [O + A + 1, O + 1] float32


def linear_model(
    spec,
    *,
    reward_fn: Optional[RewardFn] = None,
    termination_fn: Optional[TerminationFn] = None,
) -> models.Model:
    """A deterministic linear dynamics and reward model for the env described by `spec`.

    Args:
      spec: the `envs.EnvSpec` (observation shape, action width, discrete or not);
        discrete actions enter as one-hot vectors.
      reward_fn: known `(obs, action, next_obs) -> reward`, replacing the linear reward
        (PointMass's reward is quadratic, for instance).
      termination_fn: known termination, row by row; None never terminates.

    Hyperparameters: `weight_decay` is the ridge penalty (on the mean squared error);
    `holdout_ratio` of the filled rows, drawn at random, are left out of the fit and
    measure it; `learning_rate` is unused (the fit is closed form). `ModelFitInfo`
    reports mean squared errors over the next-observation and reward targets in
    environment units (`holdout_mse` is NaN without held-out rows).
    """
    obs_shape = tuple(spec.obs_shape)
    obs_dim, action_dim = spec.obs_dim, spec.action_dim
    num_features = obs_dim + action_dim + 1

    def features(obs: Array, action: Array) -> Array:
        """[N, *obs_shape], [N, ...] -> [N, F]."""
        n = obs.shape[0]
        if spec.discrete:
            act = jax.nn.one_hot(action, action_dim, dtype=jnp.float32)
        else:
            act = jnp.asarray(action, jnp.float32).reshape((n, action_dim))
        ones = jnp.ones((n, 1), jnp.float32)
        return jnp.concatenate([obs.reshape((n, obs_dim)).astype(jnp.float32), act, ones], -1)

    def init(key: PRNGKey, example: Transition, hparams: models.ModelHParams) -> LinearModelState:
        del key, hparams
        if tuple(jnp.shape(example.obs)) != obs_shape:
            raise ValueError(f"example obs shape {jnp.shape(example.obs)} does not match the spec's {obs_shape}.")
        # Before the first fit: the observation stays where it is, the reward is zero.
        weights = jnp.zeros((num_features, obs_dim + 1), jnp.float32)
        return LinearModelState(weights.at[:obs_dim, :obs_dim].set(jnp.eye(obs_dim, dtype=jnp.float32)))

    def fit(key: PRNGKey, state: LinearModelState, buffer_state, hparams: models.ModelHParams):
        del state  # closed form: the old weights play no part
        data: Transition = buffer_state.data
        capacity = data.reward.shape[0]
        x = features(data.obs, data.action)  # [C, F]
        y = jnp.concatenate([data.next_obs.reshape((capacity, obs_dim)).astype(jnp.float32),
                             data.reward.astype(jnp.float32)[:, None]], -1)  # [C, O + 1]
        # Before the buffer wraps the filled rows are the first `size`; after, all of them.
        filled = jnp.arange(capacity) < buffer_state.size
        scores = jnp.where(filled, jax.random.uniform(key, (capacity,)), 2.0)
        rank = jnp.argsort(jnp.argsort(scores))
        num_holdout = jnp.floor(buffer_state.size * hparams.holdout_ratio).astype(jnp.int32)
        num_holdout = jnp.where(buffer_state.size - num_holdout < 1, 0, num_holdout)
        held = filled & (rank < num_holdout)
        train = (filled & ~held).astype(jnp.float32)
        count = jnp.maximum(train.sum(), 1.0)
        gram = (x * train[:, None]).T @ x / count
        ridge = jnp.asarray(hparams.weight_decay, jnp.float32) + _MIN_RIDGE
        weights = jnp.linalg.solve(gram + ridge * jnp.eye(num_features, dtype=jnp.float32),
                                   (x * train[:, None]).T @ y / count)
        sq_err = ((x @ weights - y) ** 2).mean(-1)  # [C]
        held_f = held.astype(jnp.float32)
        holdout_mse = jnp.where(num_holdout > 0, (sq_err * held_f).sum() / jnp.maximum(held_f.sum(), 1.0), jnp.nan)
        info = models.ModelFitInfo(train_loss=(sq_err * train).sum() / count, holdout_mse=holdout_mse)
        return LinearModelState(weights), info

    def step(key: PRNGKey, state: LinearModelState, obs: Array, action: Array):
        del key  # deterministic
        n = obs.shape[0]
        out = features(obs, action) @ state.weights
        next_obs = out[:, :obs_dim].reshape((n,) + obs_shape)
        reward = out[:, obs_dim] if reward_fn is None else jax.vmap(reward_fn)(obs, action, next_obs)
        if termination_fn is None:
            terminated = jnp.zeros((n,), jnp.bool_)
        else:
            terminated = jax.vmap(termination_fn)(obs, action, next_obs).astype(jnp.bool_)
        return next_obs, reward.astype(jnp.float32), terminated

    return models.Model(init, fit, step)
