"""Tests for jaxmbrl.buffers: the circular replay buffer."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmbrl import buffers
from jaxmbrl.types import Transition


def _items(values):
    """A pytree batch whose every leaf encodes the item's value, in three dtypes."""
    values = jnp.asarray(values, jnp.int32)
    return {
        "x": values.astype(jnp.float32)[:, None] * jnp.ones((1, 2), jnp.float32),
        "i": values,
        "b": values % 2 == 0,
    }


def _example():
    return jax.tree.map(lambda leaf: leaf[0], _items([0]))


def test_init_shapes_and_dtypes():
    example = Transition(
        obs=jnp.zeros((3,), jnp.float32),
        action=jnp.zeros((), jnp.int32),
        reward=jnp.zeros((), jnp.float32),
        next_obs=jnp.zeros((3,), jnp.float32),
        terminated=jnp.zeros((), jnp.bool_),
        truncated=jnp.zeros((), jnp.bool_),
    )
    state = buffers.init(7, example)
    assert isinstance(state.data, Transition)
    assert state.data.obs.shape == (7, 3) and state.data.obs.dtype == jnp.float32
    assert state.data.action.shape == (7,) and state.data.action.dtype == jnp.int32
    assert state.data.terminated.dtype == jnp.bool_
    assert state.insert_pos.dtype == jnp.int32 and state.size.dtype == jnp.int32
    assert int(state.size) == 0 and buffers.capacity(state) == 7
    with pytest.raises(ValueError):
        buffers.init(0, example)


def test_add_wraps_around_hand_computed():
    state = buffers.init(5, _example())
    state = buffers.add(state, _items([1, 2, 3]))
    np.testing.assert_array_equal(state.data["i"], [1, 2, 3, 0, 0])
    assert (int(state.insert_pos), int(state.size)) == (3, 3)
    state = buffers.add(state, _items([4, 5, 6, 7]))
    # Slots 3, 4 take 4, 5; then 6, 7 overwrite the two oldest items in slots 0, 1.
    np.testing.assert_array_equal(state.data["i"], [6, 7, 3, 4, 5])
    np.testing.assert_array_equal(state.data["x"], [[6, 6], [7, 7], [3, 3], [4, 4], [5, 5]])
    np.testing.assert_array_equal(state.data["b"], [True, False, False, True, False])
    assert (int(state.insert_pos), int(state.size)) == (2, 5)
    # dtypes survive the writes.
    assert state.data["x"].dtype == jnp.float32
    assert state.data["i"].dtype == jnp.int32
    assert state.data["b"].dtype == jnp.bool_
    assert state.insert_pos.dtype == jnp.int32 and state.size.dtype == jnp.int32


def test_add_batch_larger_than_capacity_equals_sequential_adds():
    big = buffers.add(buffers.init(5, _example()), _items([1, 2]))
    big = buffers.add(big, _items(np.arange(10, 22)))  # 12 items > capacity 5
    one_by_one = buffers.add(buffers.init(5, _example()), _items([1, 2]))
    one_by_one = jax.lax.fori_loop(
        10, 22, lambda v, s: buffers.add(s, _items(v[None])), one_by_one
    )
    jax.tree.map(np.testing.assert_array_equal, big, one_by_one)
    assert sorted(np.asarray(big.data["i"]).tolist()) == [17, 18, 19, 20, 21]
    assert (int(big.insert_pos), int(big.size)) == ((2 + 12) % 5, 5)


def test_sample_only_returns_filled_entries():
    state = buffers.init(16, _example())
    state = buffers.add(state, _items(np.arange(1, 7)))  # 6 of 16 slots filled
    batch = jax.jit(buffers.sample, static_argnums=2)(jax.random.PRNGKey(0), state, 3000)
    assert batch["i"].shape == (3000,) and batch["x"].shape == (3000, 2)
    values = np.asarray(batch["i"])
    # Never an unfilled (zero) slot, and every inserted item shows up.
    assert set(values.tolist()) == set(range(1, 7))
    counts = np.bincount(values, minlength=7)[1:]
    assert counts.min() > 3000 / 6 * 0.75  # roughly uniform
    # Items stay whole: every leaf of a sampled item comes from the same slot.
    np.testing.assert_array_equal(batch["x"][:, 0], values.astype(np.float32))
    np.testing.assert_array_equal(batch["b"], values % 2 == 0)


def test_sample_after_wrap_covers_only_live_items():
    state = buffers.init(4, _example())
    state = buffers.add(state, _items(np.arange(1, 11)))  # only 7..10 are left
    values = np.asarray(buffers.sample(jax.random.PRNGKey(1), state, 1000)["i"])
    assert set(values.tolist()) == {7, 8, 9, 10}


def test_sample_sequences_are_consecutive_runs():
    state = buffers.init(10, _example())
    state = buffers.add(state, _items(np.arange(1, 8)))  # 7 items, not wrapped
    seqs = buffers.sample_sequences(jax.random.PRNGKey(2), state, 500, 3)
    assert seqs["i"].shape == (500, 3) and seqs["x"].shape == (500, 3, 2)
    v = np.asarray(seqs["i"])
    np.testing.assert_array_equal(np.diff(v, axis=1), 1)
    assert v.min() == 1 and v.max() == 7  # every start in [1, 5] is reachable
    assert set(v[:, 0].tolist()) == {1, 2, 3, 4, 5}


def test_sample_sequences_never_cross_the_write_head():
    state = buffers.init(6, _example())
    state = buffers.add(state, _items(np.arange(1, 10)))
    state = buffers.add(state, _items(np.arange(10, 16)))
    state = buffers.add(state, _items(np.arange(16, 20)))
    # Slot order is no longer insertion order: the newest item (19) sits right before
    # the oldest (14).
    np.testing.assert_array_equal(state.data["i"], [19, 14, 15, 16, 17, 18])
    assert int(state.insert_pos) == 1
    seqs = jax.jit(buffers.sample_sequences, static_argnums=(2, 3))(jax.random.PRNGKey(3), state, 2000, 4)
    v = np.asarray(seqs["i"])
    # Consecutive in insertion order, never joining the newest item (19) to the oldest.
    np.testing.assert_array_equal(np.diff(v, axis=1), 1)
    assert v.min() >= 14 and v.max() <= 19
    assert set(v[:, 0].tolist()) == {14, 15, 16}
    idx = buffers.sample_sequence_indices(jax.random.PRNGKey(3), state, 8, 4)
    assert idx.dtype == jnp.int32 and idx.shape == (8, 4)


def test_can_sample():
    state = buffers.init(8, _example())
    assert not bool(buffers.can_sample(state))
    state = buffers.add(state, _items([1, 2, 3]))
    assert bool(buffers.can_sample(state)) and bool(buffers.can_sample(state, 3))
    assert not bool(buffers.can_sample(state, 4))


def test_jit_add_does_not_recompile():
    add = jax.jit(buffers.add)
    state = buffers.init(8, _example())
    state = add(state, _items([1, 2, 3]))
    state = add(state, _items([4, 5, 6]))
    state = add(state, _items([7, 8, 9]))
    assert add._cache_size() == 1
    np.testing.assert_array_equal(state.data["i"], [9, 2, 3, 4, 5, 6, 7, 8])


def test_vmap_over_buffers():
    num_buffers = 3
    states = jax.vmap(lambda _: buffers.init(5, _example()))(jnp.arange(num_buffers))
    assert states.data["i"].shape == (num_buffers, 5)
    # Different data per buffer: buffer k stores values 100 * k + t.
    batch1 = jax.vmap(lambda k: _items(100 * k + jnp.arange(4)))(jnp.arange(num_buffers))
    batch2 = jax.vmap(lambda k: _items(100 * k + jnp.arange(4, 7)))(jnp.arange(num_buffers))
    states = jax.jit(jax.vmap(buffers.add))(states, batch1)
    states = jax.jit(jax.vmap(buffers.add))(states, batch2)
    for k in range(num_buffers):
        single = buffers.add(buffers.add(buffers.init(5, _example()), jax.tree.map(lambda x: x[k], batch1)),
                             jax.tree.map(lambda x: x[k], batch2))
        jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[k], b), states, single)
    keys = jax.random.split(jax.random.PRNGKey(4), num_buffers)
    seqs = jax.vmap(buffers.sample_sequences, in_axes=(0, 0, None, None))(keys, states, 50, 2)
    v = np.asarray(seqs["i"])
    assert v.shape == (num_buffers, 50, 2)
    np.testing.assert_array_equal(np.diff(v, axis=-1), 1)
    # Each buffer samples its own live items (values 2..6 of its own block).
    np.testing.assert_array_equal(v // 100, np.arange(num_buffers)[:, None, None] * np.ones_like(v))
    assert (v % 100).min() >= 2 and (v % 100).max() <= 6
