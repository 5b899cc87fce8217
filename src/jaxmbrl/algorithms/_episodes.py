"""Episode bookkeeping and the whole-run loop shared by the algorithms."""
from __future__ import annotations

from typing import NamedTuple

import jax
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


def scan_env_steps(step_fn, state, num_steps: int):
    """`num_steps` vectorised env steps as one `lax.scan`, with the episode bookkeeping.

    `step_fn(key, state) -> (state, transition [B], aux)` takes one step;
    `state.episode_return` [B] is updated by `track_episodes` after it. `state.key` is
    split once for the whole scan, one key per step.

    Returns:
      `(state, return_sum, count, aux)`: the summed returns and the number of the episodes
      that ended (float32, int32 scalars), and `aux` stacked [num_steps, ...].
    """

    def body(carry, key):
        state, done_sum, done_count = carry
        state, transition, aux = step_fn(key, state)
        ep_ret, finished = track_episodes(state.episode_return, transition)
        state = state._replace(episode_return=ep_ret)
        return (state, done_sum + finished.return_sum, done_count + finished.count), aux

    key, k_scan = jax.random.split(state.key)
    carry = (state._replace(key=key), jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
    (state, done_sum, done_count), aux = jax.lax.scan(body, carry, jax.random.split(k_scan, num_steps))
    return state, done_sum, done_count, aux


def run_after_warmup(init, step, num_steps: int, key, hp):
    """`init(key, hp)` then `num_steps` scanned `step`s; returns `(state, metrics)` with the
    warm-up iterations that `init` ran (`state.warmup`, [W]) first: [W + num_steps]."""
    state = init(key, hp)
    state, metrics = jax.lax.scan(lambda s, _: step(s), state, None, length=num_steps)
    return state, jax.tree.map(lambda w, m: jnp.concatenate([w, m]), state.warmup, metrics)
