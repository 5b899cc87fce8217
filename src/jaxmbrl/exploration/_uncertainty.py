"""Model uncertainty as an exploration signal: ensemble disagreement and UCB returns.

`disagreement` is the variance of the members' predicted means (Pathak et al. 2019,
"Self-supervised exploration via disagreement"; Plan2Explore, Sekar et al. 2020): it is
large where the members were fitted on little data and shrinks as data arrive, so it
serves as an intrinsic reward. `ucb_return` ranks plans by an upper (or, with a negative
beta, lower) confidence bound of their return over the members.
"""
from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from jaxmbrl.types import Array


def disagreement(member_means: Array) -> Array:
    """Variance over members of their predicted means, averaged over the output dims.

    Args:
      member_means: [E, ..., D] each member's predicted mean (E members, D outputs).

    Returns:
      [...] float32 (>= 0; exactly 0 where every member predicts the same).
    """
    means = jnp.asarray(member_means, jnp.float32)
    centred = means - means.mean(0)
    return jnp.mean(jnp.mean(centred * centred, axis=0), axis=-1)


def ucb_return(member_returns: Array, beta: Any) -> Array:
    """Mean over members plus `beta` times their standard deviation: [E, ...] -> [...].

    Args:
      member_returns: [E, ...] one return per member (float).
      beta: scalar (Python float or traced): optimism; 0 is the members' mean return,
        a negative value is pessimism.

    Returns:
      [...] float32.
    """
    returns = jnp.asarray(member_returns, jnp.float32)
    mean = returns.mean(0)
    centred = returns - mean
    std = jnp.sqrt(jnp.mean(centred * centred, axis=0))
    return mean + jnp.asarray(beta, jnp.float32) * std


def linear_decay(start: Any, end: Any, steps: int):
    """`schedule(count) -> [] float32`: `start` at 0, linear to `end` at `steps`, then `end`.

    `start` and `end` may be traced (HParams); `steps` is static, and 0 gives the
    constant `start`. Written out rather than `optax.linear_schedule` because that one,
    given traced bounds, ends a rounding error away from `end` (-1.5e-8 for 1 -> 0), and a
    decayed bonus must reach exactly 0.
    """
    start = jnp.asarray(start, jnp.float32)
    end = jnp.asarray(end, jnp.float32)
    if steps <= 0:
        return lambda count: start

    def schedule(count):
        frac = jnp.clip(jnp.asarray(count, jnp.float32) / steps, 0.0, 1.0)
        return jnp.where(frac >= 1.0, end, start + (end - start) * frac)

    return schedule
