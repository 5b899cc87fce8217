import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmbrl import envs
from jaxmbrl.algorithms import pets


def test_tiny_run_end_to_end_and_jit_step_compiles_once():
    cfg = pets.Config.tiny()
    train = pets.make_train(cfg)
    state = jax.jit(train.init)(jax.random.PRNGKey(0), cfg.hparams())
    assert int(state.buffer.size) == cfg.steps_per_iteration
    step = jax.jit(train.step)
    state, m1 = step(state)
    state, m2 = step(state)
    assert step._cache_size() == 1
    assert int(m2.env_steps) == 3 * cfg.steps_per_iteration and int(m2.iteration) == 2
    assert int(state.buffer.size) == 3 * cfg.steps_per_iteration
    assert np.isfinite(float(m2.planned_return)) and np.isfinite(float(m2.model_holdout_mse))


def test_run_vmaps_over_seeds_and_hparams_in_one_program():
    cfg = pets.Config.tiny(num_iterations=2)
    train = pets.make_train(cfg)
    hp = cfg.hparams()
    batched = jax.tree.map(lambda x: jnp.array([x, x], jnp.float32), hp)
    batched = batched._replace(planner_alpha=jnp.array([0.0, 0.5], jnp.float32))
    keys = jnp.stack([jax.random.PRNGKey(1), jax.random.PRNGKey(1)])
    run = jax.jit(jax.vmap(train.run))
    _, metrics = run(keys, batched)
    assert metrics.episode_return.shape == (2, 2)
    # Same key, same random first iteration; the planner's momentum differs afterwards.
    np.testing.assert_array_equal(metrics.step_reward[0, 0], metrics.step_reward[1, 0])
    assert float(metrics.step_reward[0, 1]) != float(metrics.step_reward[1, 1])
    # Repeats are identical; seeds differ.
    _, again = run(keys, batched)
    np.testing.assert_array_equal(metrics.step_reward, again.step_reward)
    _, other = run(jnp.stack([jax.random.PRNGKey(2), jax.random.PRNGKey(3)]), batched)
    assert not np.allclose(other.step_reward[:, 0], metrics.step_reward[:, 0])


def test_episode_returns_match_full_episodes():
    cfg = pets.Config.tiny(steps_per_iteration=0, num_iterations=2, num_envs=2)
    train = pets.make_train(cfg)
    _, metrics = jax.jit(train.run)(jax.random.PRNGKey(0), cfg.hparams())
    # One 200-step Pendulum episode per env and iteration: the return is 200 x mean reward.
    np.testing.assert_array_equal(metrics.episodes, [2, 2])
    np.testing.assert_allclose(metrics.episode_return, 200 * metrics.step_reward, rtol=1e-4)


def test_discrete_env_with_learned_reward_runs():
    cfg = pets.Config.tiny(env_id="CartPole-v1", learn_reward=True, num_iterations=2)
    train = pets.make_train(cfg)
    _, metrics = jax.jit(train.run)(jax.random.PRNGKey(0), cfg.hparams())
    assert int(metrics.episodes.sum()) >= 1 and np.isfinite(np.asarray(metrics.model_holdout_mse)).all()
    assert ((metrics.model_fit_epochs >= 1) & (metrics.model_fit_epochs <= cfg.model_epochs)).all()


@pytest.mark.slow  # a learning test: PETS + tree search is measured in docs/BENCHMARKS.md
def test_mcts_on_the_learned_ensemble_outlasts_random_actions():
    pytest.importorskip("mctx", reason="tree search needs the mctx extra: pip install 'jaxmbrl[mctx]'")
    # 300 random steps (about 13 CartPole episodes), a fit, then 300 steps of Gumbel MCTS
    # over the learned ensemble (16 simulations, 10-step lookahead, 2 rollouts per leaf).
    cfg = pets.Config(env_id="CartPole-v1", planner="mcts", num_iterations=2, steps_per_iteration=300,
                      planner_samples=16, planner_elites=1, planner_horizon=10, planner_particles=2,
                      num_members=2, num_model_elites=2, model_hidden_sizes=(32, 32), model_epochs=20)
    _, metrics = jax.jit(pets.make_train(cfg).run)(jax.random.PRNGKey(0), cfg.hparams())
    episodes, returns = np.asarray(metrics.episodes), np.asarray(metrics.episode_return)
    assert episodes[0] >= 10 and episodes[1] <= 4, episodes
    assert returns[1] > 3 * returns[0], returns


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(planner="cem", env_id="CartPole-v1"), "discrete_cem"),
        (dict(planner="discrete_cem"), "continuous"),
        (dict(planner="mcts"), "needs discrete actions, but Pendulum-v1 is continuous"),
        (dict(planner_horizon=0), "planner_horizon"),
        (dict(planner_elites=50, planner_samples=10), "planner_elites"),
        (dict(warmup_iterations=0), "warmup_iterations"),
        (dict(propagation="ts2"), "propagation"),
        (dict(planner="bogus"), "planner"),
    ],
)
def test_bad_config_fails_at_make_train(overrides, match):
    with pytest.raises(ValueError, match=match):
        pets.make_train(pets.Config.tiny(**overrides))


def test_unknown_env_lists_valid_ids():
    with pytest.raises(envs.UnknownEnvError, match="Pendulum-v1"):
        pets.make_train(pets.Config.tiny(env_id="Pendulum-v9"))
