"""Tests for jaxmbrl.algorithms.dyna: tabular Dyna-Q and deep Dyna-Q (DQN + ensemble)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmbrl import models
from jaxmbrl.algorithms import dyna


def _batched(hp, size, **columns):
    out = jax.tree.map(lambda x: jnp.full((size,), x, jnp.float32), hp)
    return out._replace(**{k: jnp.asarray(v, jnp.float32) for k, v in columns.items()})


# --- tabular pieces --------------------------------------------------------------------


def test_q_learning_update_hand_computed():
    q = jnp.array([[0.0, 0.2], [0.0, 0.0], [0.5, -1.0]], jnp.float32)
    new, td = dyna.q_learning_update(q, 0, 1, 1.0, 2, False, 0.1, 0.9)
    # td = r + gamma * max_a Q(2, a) - Q(0, 1) = 1 + 0.9 * 0.5 - 0.2 = 1.25
    assert float(td) == pytest.approx(1.25)
    assert float(new[0, 1]) == pytest.approx(0.2 + 0.1 * 1.25)
    np.testing.assert_array_equal(np.delete(np.asarray(new).ravel(), 1), np.delete(np.asarray(q).ravel(), 1))
    # A terminal transition does not bootstrap: td = 1 - 0.2.
    new, td = dyna.q_learning_update(q, 0, 1, 1.0, 2, True, 0.1, 0.9)
    assert float(td) == pytest.approx(0.8) and float(new[0, 1]) == pytest.approx(0.28)


def test_model_keeps_last_outcome_and_planning_replays_only_tried_pairs():
    from jaxmbrl.algorithms.dyna._tabular import empty_model

    model = empty_model(4, 2)
    model = dyna.record(model, 1, 0, 0.0, 2, False)
    model = dyna.record(model, 2, 1, 1.0, 3, True)
    model = dyna.record(model, 1, 0, 0.5, 3, False)  # same pair again: last seen wins
    assert int(model.num_seen) == 2 and model.pairs[:2].tolist() == [2, 5]
    assert int(model.next_state[1, 0]) == 3 and float(model.reward[1, 0]) == 0.5
    assert int(model.seen.sum()) == 2
    q = jnp.zeros((4, 2), jnp.float32).at[3].set(jnp.array([2.0, 1.0]))
    replayed = dyna.replay_pair(q, model, 0, 0.5, 0.9)
    expected, _ = dyna.q_learning_update(q, 1, 0, 0.5, 3, False, 0.5, 0.9)
    np.testing.assert_allclose(replayed, expected)
    keys = jax.random.split(jax.random.PRNGKey(0), 200)
    out = jax.jit(jax.vmap(dyna.planning_update, in_axes=(0, None, None, None, None)))(keys, q, model, 0.5, 0.9)
    changed = np.asarray(out != q).reshape(200, -1)
    # Only the two tried pairs are ever updated, and both are drawn.
    assert set(np.flatnonzero(changed.any(0))) == {2, 5}
    assert changed[:, 2].sum() > 60 and changed[:, 5].sum() > 60


# --- tabular Dyna-Q ---------------------------------------------------------------------


def test_planning_solves_the_maze_in_fewer_episodes_than_q_learning():
    cfg = dyna.Config(num_iterations=3, steps_per_iteration=1000, max_planning_steps=10, max_episodes=200)
    train = dyna.make_train(cfg)
    seeds = 4
    keys = jnp.tile(jax.random.split(jax.random.PRNGKey(0), seeds), (2, 1))
    hp = _batched(cfg.hparams(), 2 * seeds, planning_steps=[0.0] * seeds + [10.0] * seeds)
    state, metrics = jax.jit(jax.vmap(train.run))(keys, hp)
    count = np.asarray(state.episodes.count).reshape(2, seeds)
    lengths = np.asarray(state.episodes.lengths).reshape(2, seeds, -1)
    # Same keys: Q stays zero until the goal is first reached, so the first episode is
    # the same random walk with and without planning.
    np.testing.assert_array_equal(lengths[0, :, 0], lengths[1, :, 0])
    assert (count[0] >= 1).all()
    # With planning, the rest of the budget goes to near-shortest paths.
    assert count[1].sum() > 4 * count[0].sum()
    assert np.median(lengths[1, :, 5:count[1].min()]) <= 20
    planned = np.asarray(metrics.planning_updates).reshape(2, seeds, -1)
    assert (planned[0] == 0).all() and (planned[1] == 10 * cfg.steps_per_iteration).all()


def test_tabular_jit_step_compiles_once_and_counts():
    cfg = dyna.Config.tiny()
    train = dyna.make_train(cfg)
    state = jax.jit(train.init)(jax.random.PRNGKey(0), cfg.hparams())
    step = jax.jit(train.step)
    state, _ = step(state)
    state, metrics = step(state)
    assert step._cache_size() == 1
    assert int(metrics.iteration) == 1 and int(metrics.env_steps) == 2 * cfg.steps_per_iteration
    assert int(metrics.planning_updates) == cfg.max_planning_steps * cfg.steps_per_iteration
    assert state.q.shape == (54, 4) and state.q.dtype == jnp.float32
    # Every real step tried a pair from the current cell; walls are never visited.
    seen_cells = np.flatnonzero(np.asarray(state.model.seen).any(1))
    assert not np.asarray(train_env_walls())[seen_cells].any()


def train_env_walls():
    from jaxmbrl import envs

    return envs.make("DynaMaze")[0].walls


def test_vmap_over_seeds_differs_per_seed_and_repeats_identically():
    cfg = dyna.Config.tiny(steps_per_iteration=500)
    run = jax.jit(jax.vmap(dyna.make_train(cfg).run))
    keys = jax.random.split(jax.random.PRNGKey(7), 3)
    hp = _batched(cfg.hparams(), 3)
    state, metrics = run(keys, hp)
    again, metrics_again = run(keys, hp)
    np.testing.assert_array_equal(state.q, again.q)
    np.testing.assert_array_equal(state.episodes.lengths, again.episodes.lengths)
    np.testing.assert_array_equal(metrics.td_error, metrics_again.td_error)
    q = np.asarray(state.q)
    assert not np.array_equal(q[0], q[1]) and not np.array_equal(q[1], q[2])


def test_frozen_lake_tabular_learns_to_reach_the_goal():
    # FrozenLake observes the bare cell index (int32), DynaMaze a one-hot: both work.
    cfg = dyna.Config(env_id="FrozenLake-misc", env_kwargs={"is_slippery": False}, num_iterations=2,
                      steps_per_iteration=1500, max_planning_steps=10, max_episodes=500)
    train = dyna.make_train(cfg)
    hp = _batched(cfg.hparams(), 2)
    state, metrics = jax.jit(jax.vmap(train.run))(jax.random.split(jax.random.PRNGKey(0), 2), hp)
    assert state.q.shape == (2, 16, 4)
    returns = np.asarray(metrics.episode_return)  # [seeds, iterations]: the success rate
    # A uniformly random policy reaches the goal ~1.5% of the time; epsilon = 0.1 on the
    # shortest path (6 steps) still succeeds most of the time.
    assert (returns[:, -1] > 0.5).all(), returns
    # The greedy first move from the start heads right or down, never off the map.
    assert set(np.asarray(state.q[:, 0].argmax(-1)).tolist()) <= {1, 2}


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(mode="mcts"), "mode"),
        (dict(env_kwargs=[("layout",)]), "env_kwargs"),
        (dict(env_kwargs={"no_such_field": 1}), "no_such_field"),
        (dict(max_planning_steps=-1), "max_planning_steps"),
        (dict(steps_per_iteration=0), "steps_per_iteration"),
        (dict(env_id="CartPole-v1"), "tabular"),
        (dict(env_id="Pendulum-v1"), "discrete actions"),
        (dict(env_id="Pendulum-v1", mode="deep", warmup_steps=64), "discrete actions"),
        (dict(env_id="FrozenLake-misc", mode="deep", warmup_steps=64), "state index"),
        (dict(mode="deep", env_id="CartPole-v1", steps_per_iteration=100, model_train_every=30), "model_train_every"),
        (dict(mode="deep", env_id="CartPole-v1", num_members=2, num_model_elites=3), "num_model_elites"),
        (dict(mode="deep", env_id="CartPole-v1", planning_policy="greedy"), "planning_policy"),
        (dict(mode="deep", env_id="CartPole-v1", warmup_steps=8, policy_batch_size=16), "warmup_steps"),
        (dict(mode="deep", env_id="CartPole-v1", termination="oracle"), "termination"),
        (dict(mode="deep", env_id="DynaMaze", termination="known"), "termination='learned'"),
    ],
)
def test_bad_config_fails_at_make_train(overrides, match):
    with pytest.raises(ValueError, match=match):
        dyna.make_train(dyna.Config.tiny(**overrides))


# --- deep Dyna-Q ------------------------------------------------------------------------


def test_tiny_deep_dyna_runs_end_to_end_and_jit_step_compiles_once():
    cfg = dyna.Config.tiny(mode="deep")
    train = dyna.make_train(cfg)
    state = jax.jit(train.init)(jax.random.PRNGKey(0), cfg.hparams())
    assert int(state.buffer.size) == cfg.warmup_steps
    step = jax.jit(train.step)
    state, _ = step(state)
    state, metrics = step(state)
    assert step._cache_size() == 1
    assert int(state.buffer.size) == cfg.warmup_steps + 2 * cfg.steps_per_iteration
    assert int(metrics.env_steps) == cfg.warmup_steps + 2 * cfg.steps_per_iteration
    assert int(metrics.planning_updates) == cfg.max_planning_steps * cfg.steps_per_iteration
    # One real update per step plus the planned ones all moved the same counter.
    total = 2 * cfg.steps_per_iteration * (cfg.policy_updates_per_step + cfg.max_planning_steps)
    assert int(state.agent.num_updates) == total
    for name in ("eval_return", "td_error", "q_loss", "model_holdout_mse"):
        assert np.isfinite(float(getattr(metrics, name))), name
    assert 0.0 < float(metrics.eval_return) <= cfg.eval_max_steps
    assert float(metrics.epsilon) < 1.0


def test_dqn_baseline_has_no_model_and_vmaps_over_seeds():
    cfg = dyna.Config.tiny(mode="deep", max_planning_steps=0)
    train = dyna.make_train(cfg)
    run = jax.jit(jax.vmap(train.run))
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    hp = _batched(cfg.hparams(), 2)
    state, metrics = run(keys, hp)
    assert state.model is None and int(metrics.planning_updates.sum()) == 0
    assert np.isnan(np.asarray(metrics.model_holdout_mse)).all()
    again, metrics_again = run(keys, hp)
    np.testing.assert_array_equal(metrics.q_loss, metrics_again.q_loss)
    assert float(metrics.q_loss[0, -1]) != float(metrics.q_loss[1, -1])


@pytest.mark.slow
def test_deep_dyna_q_balances_cartpole():
    # scripts/dyna_cartpole.py's settings (see docs/BENCHMARKS_dyna.md), 3 seeds, 30k steps.
    cfg = dyna.Config(mode="deep", env_id="CartPole-v1", num_iterations=30, steps_per_iteration=1000,
                      max_planning_steps=4, epsilon_decay_steps=10_000, termination="known")
    train = dyna.make_train(cfg)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    _, metrics = jax.jit(jax.vmap(train.run))(keys, _batched(cfg.hparams(), 3))
    assert (np.asarray(metrics.eval_return).max(1) >= 475).any()
