"""Episode bookkeeping shared by the algorithms' interaction loops."""
from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from jaxmbrl.types import Array, Transition


class Finished(NamedTuple):
    """Episodes that ended on one vectorised step (scalars over the B envs)."""

    return_sum: Array  # float32: sum of their returns
    count: Array  # int32
    best: Array  # float32: best of their returns (-inf if none)


def track_episodes(running_return: Array, transition: Transition):
    """Adds one step's rewards [B] to the running returns and closes ended episodes.

    Returns:
      `(running_return [B], Finished)`; an episode ends at termination or truncation.
    """
    total = running_return + transition.reward
    done = transition.terminated | transition.truncated
    finished = Finished(
        return_sum=jnp.where(done, total, 0.0).sum(),
        count=done.sum(dtype=jnp.int32),
        best=jnp.where(done, total, -jnp.inf).max(),
    )
    return jnp.where(done, 0.0, total), finished
