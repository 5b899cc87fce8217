"""MBPO's imagination: branched k-step model rollouts and the model-data buffer."""
from __future__ import annotations

from typing import Callable, NamedTuple, Tuple

import jax
import jax.numpy as jnp

from jaxmbrl.exploration._uncertainty import disagreement
from jaxmbrl.types import Array, PRNGKey, Transition


def rollout_length(epoch: Array, schedule: Tuple[int, int, int, int]) -> Array:
    """[] int32 k at `epoch`: linear from `min_k` (at `start_epoch`) to `max_k` (at `end_epoch`).

    `schedule = (start_epoch, end_epoch, min_k, max_k)` as in Janner et al. (2019).
    """
    start, end, min_k, max_k = schedule
    frac = jnp.clip((epoch - start) / max(end - start, 1), 0.0, 1.0)
    return jnp.floor(min_k + frac * (max_k - min_k)).astype(jnp.int32)


def branched_rollout(
    key: PRNGKey,
    model_step: Callable[[PRNGKey, Array, Array], Tuple[Array, Array, Array]],
    policy: Callable[[PRNGKey, Array], Array],
    start_obs: Array,
    k: Array,
    max_k: int,
) -> Tuple[Transition, Array]:
    """Imagined rollouts of `policy` under `model_step` from N real start states.

    Args:
      model_step: `(key, obs [N, ...], action [N, A]) -> (next_obs, reward [N], terminated [N])`.
      policy: `(key, obs [N, ...]) -> action [N, A]`.
      start_obs: [N, *obs_shape]. k: [] int32 rollout length (traced). max_k: static bound.

    Returns:
      `(transitions [max_k, N, ...], valid [max_k, N])`: step t of rollout n is valid when
      t < k and no earlier step of that rollout was predicted terminal (the terminal step
      itself is kept, with `terminated=True`).
    """

    def body(carry, inputs):
        obs, alive = carry
        t, step_key = inputs
        k_act, k_model = jax.random.split(step_key)
        action = policy(k_act, obs)
        next_obs, reward, terminated = model_step(k_model, obs, action)
        valid = alive & (t < k)
        transition = Transition(obs, action, reward, next_obs, terminated, jnp.zeros_like(terminated))
        return (next_obs, alive & ~terminated), (transition, valid)

    n = start_obs.shape[0]
    inputs = (jnp.arange(max_k, dtype=jnp.int32), jax.random.split(key, max_k))
    _, (transitions, valid) = jax.lax.scan(body, (start_obs, jnp.ones((n,), jnp.bool_)), inputs)
    return transitions, valid


class ModelBuffer(NamedTuple):
    """The latest R batches of model rollouts, each compacted (valid items first).

    Attributes:
      data: Transitions with leaves [R, M, ...] (M = max_k * rollouts per batch).
      counts: [R] int32 valid items at the front of each batch.
      next_slot: [] int32 the batch overwritten next.
    """

    data: Transition
    counts: Array
    next_slot: Array


def model_buffer_init(retain: int, per_batch: int, example: Transition) -> ModelBuffer:
    """An empty buffer of `retain` batches of `per_batch` items shaped like `example`."""
    data = jax.tree.map(lambda a: jnp.zeros((retain, per_batch) + jnp.shape(a), jnp.asarray(a).dtype), example)
    return ModelBuffer(data, jnp.zeros((retain,), jnp.int32), jnp.zeros((), jnp.int32))


def model_buffer_add(buf: ModelBuffer, transitions: Transition, valid: Array) -> ModelBuffer:
    """Replaces the oldest batch with `transitions` [..., ...] whose `valid` [...] items are kept."""
    flat = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[valid.ndim:]), transitions)
    valid = valid.reshape(-1)
    order = jnp.argsort(jnp.logical_not(valid).astype(jnp.int32), stable=True)
    compact = jax.tree.map(lambda a: a[order], flat)
    slot = buf.next_slot
    data = jax.tree.map(lambda s, a: s.at[slot].set(a.astype(s.dtype)), buf.data, compact)
    counts = buf.counts.at[slot].set(valid.sum(dtype=jnp.int32))
    return ModelBuffer(data, counts, (slot + 1) % buf.counts.shape[0])


def model_buffer_sample(key: PRNGKey, buf: ModelBuffer, batch_size: int) -> Transition:
    """A uniform batch [batch_size, ...] over all valid items (zeros while empty)."""
    total = buf.counts.sum()
    i = jax.random.randint(key, (batch_size,), 0, jnp.maximum(total, 1), dtype=jnp.int32)
    ends = jnp.cumsum(buf.counts)
    batch = jnp.minimum(jnp.searchsorted(ends, i, side="right"), buf.counts.shape[0] - 1)
    offset = i - (ends[batch] - buf.counts[batch])
    return jax.tree.map(lambda a: a[batch, offset], buf.data)


def disagreement_step(
    model_step: Callable[[PRNGKey, Array, Array], Tuple[Array, Array, Array]],
    member_means: Callable[[Array, Array], Array],
    coefficient: Array,
) -> Callable[[PRNGKey, Array, Array], Tuple[Array, Tuple[Array, Array], Array]]:
    """`model_step` whose reward becomes `(reward + coefficient * bonus, bonus)`.

    `bonus [N] = exploration.disagreement(member_means(obs, action))` is the variance
    over members of their predicted next observations at (s, a), taken before the step
    is sampled, so it does not depend on the step key.

    Args:
      model_step: `(key, obs [N, ...], action [N, A]) -> (next_obs, reward [N], terminated [N])`.
      member_means: `(obs [N, ...], action [N, A]) -> [K, N, D]`.
      coefficient: [] float32 (traced).
    """

    def step(key, obs, action):
        next_obs, reward, terminated = model_step(key, obs, action)
        bonus = disagreement(member_means(obs, action))
        return next_obs, (reward + coefficient * bonus, bonus), terminated

    return step


def bonus_rollout(
    key: PRNGKey,
    model_step: Callable[[PRNGKey, Array, Array], Tuple[Array, Array, Array]],
    member_means: Callable[[Array, Array], Array],
    coefficient: Array,
    policy: Callable[[PRNGKey, Array], Array],
    start_obs: Array,
    k: Array,
    max_k: int,
) -> Tuple[Transition, Array, Array]:
    """`branched_rollout` with the disagreement bonus in every imagined reward.

    Returns:
      `(transitions [max_k, N, ...], valid [max_k, N], bonus [max_k, N])`: the
      transitions' rewards include `coefficient * bonus`; `bonus` is the disagreement
      alone (for the metrics). The same key gives the same draws as `branched_rollout`.
    """
    step = disagreement_step(model_step, member_means, coefficient)
    # The reward slot carries the (reward, bonus) pair through the scan; split it after.
    transitions, valid = branched_rollout(key, step, policy, start_obs, k, max_k)
    reward, bonus = transitions.reward
    return transitions._replace(reward=reward), valid, bonus
