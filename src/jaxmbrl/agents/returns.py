"""Return estimators and return normalisation for learning in imagination.

Unbatched along time (axis 0); `jax.vmap` them over batch axes.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxmbrl.types import Array

__all__ = ["ReturnScale", "lambda_returns", "return_scale_init", "return_scale_update", "scale"]


def lambda_returns(rewards: Array, discounts: Array, values: Array, lambda_: Any) -> Array:
    """TD(lambda) returns, a reverse `lax.scan` (Sutton & Barto 2018, eq. 12.18; Dreamer):

        R_t = r_t + d_t * ((1 - lambda) * v_{t+1} + lambda * R_{t+1}),   R_T = v_T.

    Args:
      rewards: [T] r_t, the reward of the step from t to t + 1.
      discounts: [T] d_t = discount * (probability the episode goes on after step t).
      values: [T + 1] v_0 .. v_T; v_T bootstraps the tail.
      lambda_: scalar in [0, 1] (0: one-step TD targets, 1: discounted Monte Carlo + v_T).

    Returns:
      [T] R_0 .. R_{T-1}.
    """
    lambda_ = jnp.asarray(lambda_, values.dtype)

    def body(next_return, inputs):
        reward, discount, next_value = inputs
        ret = reward + discount * ((1.0 - lambda_) * next_value + lambda_ * next_return)
        return ret, ret

    _, returns = jax.lax.scan(body, values[-1], (rewards, discounts, values[1:]), reverse=True)
    return returns


class ReturnScale(NamedTuple):
    """Running 5th and 95th percentiles of returns (scalars, float32)."""

    low: Array
    high: Array


def return_scale_init() -> ReturnScale:
    """Percentiles at zero: the first update sets them (the scale is floored at 1 anyway)."""
    return ReturnScale(jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))


def return_scale_update(state: ReturnScale, returns: Array, decay: Any = 0.99) -> ReturnScale:
    """Moves the running percentiles towards this batch's 5th and 95th (DreamerV3)."""
    low = jnp.percentile(returns, 5.0)
    high = jnp.percentile(returns, 95.0)
    decay = jnp.asarray(decay, jnp.float32)
    return ReturnScale(decay * state.low + (1 - decay) * low, decay * state.high + (1 - decay) * high)


def scale(state: ReturnScale) -> Array:
    """max(1, P95 - P5): divides advantages. Large returns shrink to a unit range, while
    small ones are not blown up, so sparse-reward noise is not amplified (DreamerV3)."""
    return jnp.maximum(1.0, state.high - state.low)
