"""Tree search (`planning.mcts`, mctx underneath): values and visits on hand-computed toy
trees, termination ending a branch, the true CartPole dynamics, bad input.

Planner-contract tests (jit compiles once, vmap over states equals single calls, every
float sweeps in one program, ranges) cover "mcts" and "mcts_puct" in test_planning.py;
PETS with planner="mcts" is in test_pets.py.
"""
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmbrl.planning as planning
from jaxmbrl import envs
from jaxmbrl.envs import EnvSpec
from jaxmbrl.testing import oracle_episode_returns

pytest.importorskip("mctx", reason="tree search needs the mctx extra: pip install 'jaxmbrl[mctx]'")

# Two actions on a line: action 1 moves x up by one, action 0 down; the reward is the new x.
LINE = EnvSpec("Line", (), 2, True, 2, (), (), 10)


def line_model(key, params, obs, action):
    next_obs = obs + (2 * action - 1).astype(jnp.float32)
    return next_obs, next_obs, jnp.zeros((), jnp.bool_)


def _search(model_fn, **kwargs):
    return jax.jit(planning.mcts_search(model_fn, LINE, **kwargs))(jax.random.PRNGKey(0), None, jnp.float32(0.0))


def test_one_level_search_backs_up_reward_plus_discounted_leaf_value():
    # Two simulations visit each root action once; leaves are valued by value_fn = 10 x + 1.
    out = _search(line_model, num_simulations=2, horizon=1, discount=0.5, gumbel_scale=0.0,
                  value_fn=lambda p, x: 10.0 * x + 1.0)
    np.testing.assert_array_equal(out.visit_counts, [1, 1])
    # Q(a) = r + 0.5 V(x'): up 1 + 0.5 * 11 = 6.5, down -1 + 0.5 * -9 = -5.5.
    np.testing.assert_allclose(out.q_values, [-5.5, 6.5])
    # The root's value averages its own estimate (V(0) = 1) with the two backed-up returns.
    np.testing.assert_allclose(out.root_value, (1.0 + 6.5 - 5.5) / 3, rtol=1e-6)
    assert int(out.action) == 1 and out.plan.tolist() == [1]


def test_two_level_search_visits_the_better_action_and_backs_up_the_discounted_sum():
    out = _search(line_model, num_simulations=24, horizon=2, discount=0.5, selection="puct",
                  value_fn=lambda p, x: jnp.zeros((), jnp.float32))
    visits = np.asarray(out.visit_counts)
    assert visits[1] > 2 * visits[0] and visits.sum() == 24
    assert int(out.action) == 1 and out.plan.tolist() == [1, 1]  # up, then up again: 1 + 0.5 * 2
    tree = jax.tree.map(lambda x: np.asarray(x)[0], out.tree)
    up = tree.children_index[0, 1]
    # Below "up" (x = 1): up again earns 2, down earns 0, and leaves at the depth limit are 0.
    seen = tree.children_visits[up] > 0
    np.testing.assert_allclose(tree.children_rewards[up][seen], np.array([0.0, 2.0])[seen])
    # The node's value is the visit-weighted mean of its own estimate (0) and each child's
    # reward + 0.5 * value; the root's Q of "up" is 1 + 0.5 * that value.
    child_q = tree.children_rewards[up] + tree.children_discounts[up] * tree.children_values[up]
    mean = (tree.children_visits[up] * child_q).sum() / (1 + tree.children_visits[up].sum())
    np.testing.assert_allclose(tree.node_values[up], mean, rtol=1e-5)
    np.testing.assert_allclose(out.q_values[1], 1.0 + 0.5 * tree.node_values[up], rtol=1e-5)
    assert 1.0 < float(out.q_values[1]) <= 2.0 and float(out.q_values[0]) < -1.0


def stopping_model(key, params, obs, action):
    """Action 0 ends the episode with reward 1 (and a garbage NaN successor); action 1
    goes on with reward 0.4."""
    stop = action == 0
    next_obs = jnp.where(stop, jnp.nan, obs + 1.0)
    return next_obs, jnp.where(stop, 1.0, 0.4).astype(jnp.float32), stop


def test_predicted_termination_ends_the_branch():
    # Every live state is worth 5 and a terminated one nothing (its NaN value must not leak).
    value_fn = lambda p, x: x * 0.0 + 5.0  # noqa: E731 (NaN for the NaN successor)
    out = _search(stopping_model, num_simulations=2, horizon=1, gumbel_scale=0.0, value_fn=value_fn)
    np.testing.assert_allclose(out.q_values, [1.0, 0.4 + 5.0])
    assert int(out.action) == 1 and np.isfinite(out.root_value)
    # Deeper: everything below the terminated branch earns 0 with discount 0.
    out = _search(stopping_model, num_simulations=30, horizon=3, selection="puct", value_fn=value_fn)
    tree = jax.tree.map(lambda x: np.asarray(x)[0], out.tree)
    stopped = tree.children_index[0, 0]
    assert tree.children_visits[stopped].sum() > 0  # the search did look below it
    np.testing.assert_array_equal(tree.children_rewards[stopped], 0.0)
    np.testing.assert_array_equal(tree.children_discounts[stopped], 0.0)
    np.testing.assert_allclose(out.q_values[0], 1.0)
    assert np.isfinite(tree.node_values).all()
    # Random-rollout leaves (no value_fn) stop at the termination too: 0.4 for 3 steps
    # beats stopping at once for 1, and nothing after a rollout's stop counts.
    out = _search(stopping_model, num_simulations=16, horizon=3, num_particles=8)
    assert int(out.action) == 1 and np.isfinite(np.asarray(out.q_values)).all()
    np.testing.assert_allclose(out.q_values[0], 1.0)


# pUCT's search is mctx's too; its 500-step episode is `slow` for the suite's time.
@pytest.mark.parametrize("selection", ["gumbel", pytest.param("puct", marks=pytest.mark.slow)])
def test_mcts_keeps_cartpole_up_for_500_steps_on_the_true_dynamics(selection):
    model_fn, _ = envs.true_model("CartPole-v1")
    spec = envs.make("CartPole-v1")[2]
    planner = planning.mcts(model_fn, spec, num_simulations=32, horizon=10, num_particles=8, selection=selection)
    returns = np.asarray(oracle_episode_returns("CartPole-v1", planner, 2, 500)(jax.random.PRNGKey(0)))
    np.testing.assert_array_equal(returns, [500.0, 500.0])


def test_a_prior_steers_the_root_and_gumbel_scale_zero_is_deterministic():
    prior = lambda p, x: jnp.array([4.0, 0.0], jnp.float32)  # noqa: E731 (strongly "down")
    kwargs = dict(num_simulations=8, horizon=2, value_fn=lambda p, x: jnp.zeros((), jnp.float32))
    search = jax.jit(planning.mcts_search(line_model, LINE, selection="puct", prior_fn=prior, **kwargs))
    puct = search(jax.random.PRNGKey(0), None, jnp.float32(0.0))
    plain = _search(line_model, selection="puct", **kwargs)
    assert int(puct.visit_counts[0]) > int(plain.visit_counts[0])
    search = jax.jit(planning.mcts_search(line_model, LINE, gumbel_scale=0.0, **kwargs))
    a = search(jax.random.PRNGKey(1), None, jnp.float32(0.0))
    b = search(jax.random.PRNGKey(2), None, jnp.float32(0.0))
    np.testing.assert_array_equal(a.action_weights, b.action_weights)


def test_continuous_env_and_bad_settings_are_one_line_errors():
    spec = envs.make("Pendulum-v1")[2]
    with pytest.raises(ValueError, match="mcts needs a discrete action space; Pendulum-v1 is continuous") as err:
        planning.mcts(line_model, spec, num_simulations=8, horizon=3)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match=r"planner='mcts' needs discrete actions, but Pendulum-v1 is continuous"):
        planning.make_planner("mcts", line_model, spec, horizon=3, num_samples=8, num_elites=1, num_iters=1)
    with pytest.raises(ValueError, match="selection='ucb' is unknown"):
        planning.mcts(line_model, LINE, num_simulations=8, horizon=3, selection="ucb")
    with pytest.raises(ValueError, match="num_simulations must be >= 1"):
        planning.mcts(line_model, LINE, num_simulations=0, horizon=3)
    with pytest.raises(ValueError, match=r"mcts_puct.dirichlet_fraction=2"):
        planning.mcts(line_model, LINE, num_simulations=8, horizon=3, selection="puct", dirichlet_fraction=2.0)


def test_without_mctx_tree_search_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mctx", None)  # as if it were not installed
    with pytest.raises(envs.MissingExtraError, match=r"pip install 'jaxmbrl\[mctx\]'"):
        planning.mcts(line_model, LINE, num_simulations=8, horizon=3)
