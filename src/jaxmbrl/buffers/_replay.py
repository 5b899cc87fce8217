"""Fixed-capacity circular replay buffer held in a pytree.

The storage mirrors one example item (e.g. a `Transition`) with a leading capacity C on
every leaf. Items are written in insertion order at `insert_pos`, wrapping around, so
once the buffer is full the oldest item sits at `insert_pos`. Capacity and batch sizes
are read from array shapes and are therefore static under `jit`.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmbrl.types import Array, PRNGKey, PyTree


class BufferState(NamedTuple):
    """Replay storage.

    Attributes:
      data: pytree like the example item, every leaf [C, ...] with the item's dtype.
      insert_pos: [] int32, physical slot the next item is written to.
      size: [] int32, number of filled slots (at most C).
    """

    data: PyTree
    insert_pos: Array
    size: Array


def capacity(state: BufferState) -> int:
    """The static capacity C."""
    return jax.tree.leaves(state.data)[0].shape[0]


def init(capacity: int, example: PyTree) -> BufferState:
    """An empty buffer for items shaped like `example` (one unbatched item).

    Args:
      capacity: C, the number of items kept.
      example: one item; only its leaves' shapes and dtypes are used.
    """
    if capacity < 1:
        raise ValueError(f"capacity must be positive, got {capacity}.")

    def storage(leaf):
        leaf = jnp.asarray(leaf)
        return jnp.zeros((capacity,) + leaf.shape, dtype=leaf.dtype)

    return BufferState(
        data=jax.tree.map(storage, example),
        insert_pos=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
    )


def add(state: BufferState, batch: PyTree) -> BufferState:
    """Appends a batch of items [B, ...], overwriting the oldest once full.

    The result equals adding the B items one by one: if B > C, only the last C survive.
    """
    cap = capacity(state)
    num_new = jax.tree.leaves(batch)[0].shape[0]
    kept = min(num_new, cap)
    # Items dropped from the front of an oversized batch still advance the write head,
    # so the surviving ones land where sequential adds would have put them.
    offset = num_new - kept
    slots = (state.insert_pos + offset + jnp.arange(kept, dtype=jnp.int32)) % cap

    def write(storage, items):
        return storage.at[slots].set(jnp.asarray(items[offset:], storage.dtype))

    return BufferState(
        data=jax.tree.map(write, state.data, batch),
        insert_pos=((state.insert_pos + num_new) % cap).astype(jnp.int32),
        size=jnp.minimum(state.size + num_new, cap).astype(jnp.int32),
    )


def can_sample(state: BufferState, length: int = 1) -> Array:
    """[] bool: whether the buffer holds at least `length` items."""
    return state.size >= length


def gather(state: BufferState, indices: Array) -> PyTree:
    """Items at physical `indices` (any shape S): a pytree with leaves [*S, ...]."""
    return jax.tree.map(lambda storage: storage[indices], state.data)


def sample_indices(key: PRNGKey, state: BufferState, batch_size: int) -> Array:
    """[batch_size] int32 physical slots drawn uniformly from the filled part.

    Before the buffer wraps the filled slots are [0, size); afterwards all of them.
    On an empty buffer the slots point at zero storage.
    """
    return jax.random.randint(key, (batch_size,), 0, jnp.maximum(state.size, 1), dtype=jnp.int32)


def sample(key: PRNGKey, state: BufferState, batch_size: int) -> PyTree:
    """A uniform batch of stored items, leaves [batch_size, ...] (with replacement)."""
    return gather(state, sample_indices(key, state, batch_size))


def sample_sequence_indices(key: PRNGKey, state: BufferState, batch_size: int, length: int) -> Array:
    """[batch_size, length] int32 physical slots of runs of consecutive items.

    Starts are uniform over runs that lie wholly in the filled part and, once the buffer
    has wrapped, do not cross the write head (so no run joins the newest item to the
    oldest). Needs `size >= length` (see `can_sample`); otherwise runs include
    unfilled zero slots.
    """
    cap = capacity(state)
    oldest = (state.insert_pos - state.size) % cap
    num_starts = jnp.maximum(state.size - length + 1, 1)
    start = jax.random.randint(key, (batch_size, 1), 0, num_starts, dtype=jnp.int32)
    # Positions counted from the oldest item, mapped back to physical slots.
    return ((oldest + start + jnp.arange(length, dtype=jnp.int32)) % cap).astype(jnp.int32)


def sample_sequences(key: PRNGKey, state: BufferState, batch_size: int, length: int) -> PyTree:
    """Runs of `length` consecutive items in insertion order: leaves [batch_size, length, ...]."""
    return gather(state, sample_sequence_indices(key, state, batch_size, length))


def sample_env_sequences(key: PRNGKey, state: BufferState, batch_size: int, length: int) -> PyTree:
    """Runs of one env's consecutive records from a buffer of vectorised steps.

    Each stored item holds one record per env (leaves [num_envs, ...]); a run is
    `length` consecutive slots (as `sample_sequence_indices`) of one uniformly drawn env.

    Returns:
      leaves [batch_size, length, ...].
    """
    k_time, k_env = jax.random.split(key)
    slots = sample_sequence_indices(k_time, state, batch_size, length)  # [b, T]
    num_envs = jax.tree.leaves(state.data)[0].shape[1]
    env = jax.random.randint(k_env, (batch_size, 1), 0, num_envs, dtype=jnp.int32)
    return jax.tree.map(lambda a: a[slots, env], state.data)
