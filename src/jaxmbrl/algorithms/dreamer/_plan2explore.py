"""Plan2Explore's disagreement reward for Dreamer (Sekar et al. 2020).

An ensemble of `num_heads` one-step predictors reads the latent features f(s_t) and the
action a_t and predicts the next posterior's stochastic state (flattened one-hots, the
target DreamerV3's exploration code calls "stoch"). The heads learn from the world
model's own posteriors, with the gradient stopped, so they never shape the model. In
imagination their disagreement (the variance over heads of their predictions, averaged
over the outputs: `exploration.disagreement`) is large where the model has seen little,
and `intrinsic_reward` times it is added to the imagined reward the actor maximises.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxmbrl import models
from jaxmbrl.models._rssm import action_vector
from jaxmbrl.exploration import disagreement
from jaxmbrl.models._networks import MLP
from jaxmbrl.types import Array, PRNGKey


class Heads(NamedTuple):
    """The ensemble: `init(key) -> params` (each leaf [K, ...]) and
    `apply(params, features [..., F], actions [..., A]) -> predictions [K, ..., S * C]`."""

    init: Any
    apply: Any


def make_heads(rssm: models.RSSM, num_heads: int, hidden_size: int, layers: int) -> Heads:
    cfg = rssm.config
    net = MLP((hidden_size,) * layers, cfg.stoch_size * cfg.classes)
    example = jnp.zeros((cfg.feature_size + cfg.action_dim,), jnp.float32)

    def init(key: PRNGKey):
        return jax.vmap(net.init, in_axes=(0, None))(jax.random.split(key, num_heads), example)

    def apply(params, feats: Array, actions: Array) -> Array:
        x = jnp.concatenate([feats, action_vector(rssm, actions)], -1)
        return jax.vmap(net.apply, in_axes=(0, None))(params, x)

    return Heads(init, apply)


def heads_loss(heads: Heads, params, posterior: models.RSSMState, actions: Array, is_first: Array) -> Array:
    """Mean squared error of every head's prediction of stoch_{t+1} from (f(s_t), a_t).

    Args:
      posterior: RSSMState [B, T, ...] of the world model's filtering (gradient stopped).
      actions: [B, T, A] | [B, T], a_t taken at o_t. is_first: [B, T] bool.
    Returns:
      [] float32; pairs that cross an episode start (is_first at t + 1) are left out.
    """
    post = jax.lax.stop_gradient(posterior)
    feats = models.features(post)[:, :-1]
    batch, time = post.stoch.shape[:2]
    target = post.stoch[:, 1:].reshape(batch, time - 1, -1)
    pred = heads.apply(params, feats, actions[:, :-1])  # [K, B, T - 1, S * C]
    valid = (~is_first[:, 1:]).astype(jnp.float32)
    err = ((pred - target) ** 2).mean(-1).mean(0)  # [B, T - 1]
    return (err * valid).sum() / jnp.maximum(valid.sum(), 1.0)


def intrinsic_reward(heads: Heads, params, feats: Array, actions: Array) -> Array:
    """[..., H] disagreement of the heads at each imagined (s_t, a_t): feats [..., H + 1, F]
    (the start first, as `models.imagine` gives them) and actions [..., H, ...]."""
    return disagreement(heads.apply(jax.lax.stop_gradient(params), feats[..., :-1, :], actions))
