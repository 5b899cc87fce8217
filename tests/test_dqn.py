"""Tests for jaxmbrl.agents.dqn: TD targets, the update, target schedule, exploration."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmbrl.agents import dqn
from jaxmbrl.types import Transition

GAMMA = 0.9


def _batch(truncated=(False, True)):
    """Two transitions: the first terminates, the second is cut by a time limit."""
    return Transition(
        obs=jnp.array([[0.1, -0.2, 0.3], [0.5, 0.4, -0.6]], jnp.float32),
        action=jnp.array([1, 0], jnp.int32),
        reward=jnp.array([1.0, 0.5], jnp.float32),
        next_obs=jnp.array([[0.2, 0.2, 0.2], [-0.3, 0.7, 0.1]], jnp.float32),
        terminated=jnp.array([True, False]),
        truncated=jnp.array(truncated),
    )


def test_td_target_hand_computed_terminated_only():
    reward = jnp.array([1.0, 0.5], jnp.float32)
    terminated = jnp.array([True, False])
    next_target = jnp.array([[10.0, 20.0], [3.0, 7.0]], jnp.float32)
    next_online = jnp.array([[0.0, 1.0], [2.0, -1.0]], jnp.float32)
    # Q-learning: the terminal one keeps r; the other bootstraps max_a Q_target(s', a) = 7.
    np.testing.assert_allclose(dqn.td_target(reward, terminated, GAMMA, next_target), [1.0, 0.5 + 0.9 * 7.0])
    # Double Q: the online net picks action 0 in s', evaluated by the target net: 3.
    np.testing.assert_allclose(
        dqn.td_target(reward, terminated, GAMMA, next_target, next_online), [1.0, 0.5 + 0.9 * 3.0]
    )


@pytest.mark.parametrize("double_q", [False, True])
def test_update_loss_matches_hand_computed_target_and_ignores_truncation(double_q):
    agent = dqn.make_dqn(3, 2, (8,), double_q=double_q, huber_delta=1.0, target_update_period=100)
    state = agent.init(jax.random.PRNGKey(0))
    # Make online and target nets differ so that double Q matters.
    other = agent.init(jax.random.PRNGKey(1))
    state = state._replace(target_params=other.params)
    batch = _batch()
    q = np.asarray(agent.q_values(state.params, batch.obs))
    next_target = np.asarray(agent.q_values(state.target_params, batch.next_obs))
    next_online = np.asarray(agent.q_values(state.params, batch.next_obs))
    a1 = int(np.argmax(next_online[1])) if double_q else int(np.argmax(next_target[1]))
    target = np.array([1.0, 0.5 + GAMMA * next_target[1, a1]])  # truncated one bootstraps
    err = q[[0, 1], [1, 0]] - target
    huber = np.where(np.abs(err) <= 1.0, 0.5 * err**2, np.abs(err) - 0.5)
    update = jax.jit(agent.update)
    _, info = update(state, batch, GAMMA)
    np.testing.assert_allclose(float(info.loss), huber.mean(), rtol=1e-5)
    np.testing.assert_allclose(float(info.td_abs), np.abs(err).mean(), rtol=1e-5)
    # The truncated flag plays no part in the target.
    _, same = update(state, _batch(truncated=(False, False)), GAMMA)
    assert float(same.loss) == float(info.loss)
    assert update._cache_size() == 1


def _same(a, b):
    return all(bool(jnp.array_equal(x, y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_periodic_hard_target_update():
    agent = dqn.make_dqn(3, 2, (8,), target_update_period=3)
    state = agent.init(jax.random.PRNGKey(0))
    initial = state.params
    update = jax.jit(agent.update)
    for i in range(1, 4):
        state, _ = update(state, _batch(), GAMMA, 1.0)
        assert not _same(state.params, initial)
        if i < 3:
            assert _same(state.target_params, initial)
    assert _same(state.target_params, state.params) and int(state.num_updates) == 3


def test_polyak_target_update():
    agent = dqn.make_dqn(3, 2, (8,), target_update_period=1)
    state = agent.init(jax.random.PRNGKey(0))
    old_target = state.target_params
    state, _ = jax.jit(agent.update)(state, _batch(), GAMMA, 0.1)
    expected = jax.tree.map(lambda p, t: 0.1 * p + 0.9 * t, state.params, old_target)
    for got, want in zip(jax.tree.leaves(state.target_params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_repeated_updates_fit_terminal_rewards():
    agent = dqn.make_dqn(3, 2, (32,), learning_rate=1e-2)
    state = agent.init(jax.random.PRNGKey(0))
    batch = _batch()._replace(terminated=jnp.array([True, True]), reward=jnp.array([1.0, -2.0]))

    def body(state, _):
        return agent.update(state, batch, GAMMA)

    state, info = jax.jit(lambda s: jax.lax.scan(body, s, None, length=300))(state)
    q = agent.q_values(state.params, batch.obs)
    np.testing.assert_allclose([q[0, 1], q[1, 0]], [1.0, -2.0], atol=0.05)
    assert float(info.loss[-1]) < 0.01 * float(info.loss[0])


def test_epsilon_greedy_ties_and_exploration():
    keys = jax.random.split(jax.random.PRNGKey(0), 2000)
    pick = jax.jit(jax.vmap(dqn.epsilon_greedy, in_axes=(0, None, None)))
    greedy = np.asarray(pick(keys, jnp.array([0.0, 2.0, 1.0]), 0.0))
    assert (greedy == 1).all()
    ties = np.asarray(pick(keys, jnp.array([3.0, 1.0, 3.0, 3.0]), 0.0))
    counts = np.bincount(ties, minlength=4)
    assert counts[1] == 0 and (counts[[0, 2, 3]] > 500).all()
    explore = np.asarray(pick(keys, jnp.array([0.0, 2.0, 1.0]), 1.0))
    assert (np.bincount(explore, minlength=3) > 550).all()
    mixed = np.asarray(pick(keys, jnp.array([0.0, 2.0, 1.0]), 0.3))
    # Greedy with probability 0.7 plus a third of the random picks.
    assert abs((mixed == 1).mean() - (0.7 + 0.3 / 3)) < 0.04


def test_epsilon_schedule_is_linear_and_sweepable():
    sched = dqn.epsilon_schedule(1.0, 0.1, 100)
    np.testing.assert_allclose([sched(0), sched(50), sched(100), sched(1000)], [1.0, 0.55, 0.1, 0.1], rtol=1e-6)
    assert sched(jnp.int32(10)).dtype == jnp.float32
    assert float(dqn.epsilon_schedule(1.0, 0.2, 0)(5)) == pytest.approx(0.2)
    starts = jnp.array([1.0, 0.5], jnp.float32)
    swept = jax.jit(jax.vmap(lambda s: dqn.epsilon_schedule(s, 0.1, 100)(50)))(starts)
    np.testing.assert_allclose(swept, [0.55, 0.3], rtol=1e-6)


def test_make_dqn_rejects_bad_settings():
    with pytest.raises(ValueError, match="target_update_period"):
        dqn.make_dqn(3, 2, target_update_period=0)
    with pytest.raises(ValueError, match="num_actions"):
        dqn.make_dqn(3, 0)


def test_learning_rate_is_traced_and_network_shapes():
    agent = dqn.make_dqn((2, 2), 3, (8, 8))
    state = jax.jit(agent.init)(jax.random.PRNGKey(0), jnp.float32(3e-4))
    assert float(state.opt_state.hyperparams["learning_rate"]) == pytest.approx(3e-4)
    q = agent.q_values(state.params, jnp.zeros((5, 2, 2), jnp.float32))
    assert q.shape == (5, 3)
    a = agent.act(jax.random.PRNGKey(0), state.params, jnp.zeros((2, 2)), 0.1)
    assert a.shape == () and a.dtype == jnp.int32
    assert isinstance(agent.optimizer, optax.GradientTransformation)


class _InlineQNetwork(nn.Module):
    """The Q network as it was written before `models.MLP` took its layers over."""

    num_actions: int
    hidden_sizes: tuple

    @nn.compact
    def __call__(self, x):
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width, param_dtype=jnp.float32)(x))
        return nn.Dense(self.num_actions, param_dtype=jnp.float32)(x)


def test_q_network_keeps_its_parameter_tree_and_initial_values():
    agent = dqn.make_dqn(3, 4, (16, 8))
    state = agent.init(jax.random.PRNGKey(0))
    ref = _InlineQNetwork(4, (16, 8)).init(jax.random.PRNGKey(0), jnp.zeros((3,)))
    assert jax.tree.structure(ref) == jax.tree.structure(state.params)
    jax.tree.map(np.testing.assert_array_equal, ref, state.params)
    obs = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    np.testing.assert_array_equal(agent.q_values(state.params, obs), _InlineQNetwork(4, (16, 8)).apply(ref, obs))


def test_update_learning_rate_overrides_the_stored_one():
    agent = dqn.make_dqn(3, 2, (8,), learning_rate=1e-2)
    state = agent.init(jax.random.PRNGKey(0))
    frozen, _ = jax.jit(agent.update)(state, _batch(), GAMMA, 1.0, 0.0)
    assert _same(frozen.params, state.params)
    assert float(frozen.opt_state.hyperparams["learning_rate"]) == 0.0
    moved, _ = jax.jit(agent.update)(state, _batch(), GAMMA)
    assert not _same(moved.params, state.params)
