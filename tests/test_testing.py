"""Tests for jaxmbrl.testing: the PointMass fixture environment."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmbrl.testing as jt
from jaxmbrl import envs

ID = "PointMass-jaxmbrl"


def _pd(dim, kp=3.0, kd=3.0):
    """Linear state feedback towards the origin, saturated to the action bounds."""
    return lambda key, obs: jnp.clip(-kp * obs[:dim] - kd * obs[dim:], -1.0, 1.0)


def _rollout(policy, dim, num_steps, num_envs=32, seed=0, **kwargs):
    env, params, spec = envs.make(ID, dim=dim, **kwargs)
    run = jax.jit(envs.rollout, static_argnums=(0, 2, 4, 5, 6))
    return run(env, params, spec, jax.random.PRNGKey(seed), policy, num_steps, num_envs)


@pytest.mark.parametrize("dim", [1, 2])
def test_make_after_import(dim):
    assert ID in envs.registered_ids()
    env, params, spec = envs.make(ID, dim=dim)
    assert isinstance(env, jt.PointMass) and isinstance(params, jt.PointMassParams)
    assert spec.obs_shape == (2 * dim,) and spec.action_dim == dim and not spec.discrete
    assert spec.low == (-1.0,) * dim and spec.high == (1.0,) * dim
    assert spec.max_steps == 50
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    assert obs.shape == spec.obs_shape and obs.dtype == jnp.float32
    assert bool(env.observation_space(params).contains(obs))
    assert bool(jnp.all(jnp.abs(state.position) <= params.init_position))
    _, params, spec = envs.make(ID, dim=dim, max_steps_in_episode=7)
    assert params.max_steps_in_episode == 7 and spec.max_steps == 7


def test_reward_fn_matches_env_on_rollouts():
    dim = 2
    tr = _rollout(lambda k, o: jax.random.uniform(k, (dim,), jnp.float32, -1.5, 1.5), dim, 120, 4)
    flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), tr)
    r = jax.vmap(jt.point_mass_reward_fn)(flat.obs, flat.action, flat.next_obs)
    assert r.dtype == jnp.float32
    # Actions beyond the bounds exercise the clip inside the reward.
    assert bool(jnp.any(jnp.abs(flat.action) > 1.0))
    np.testing.assert_allclose(r, flat.reward, atol=1e-5, rtol=1e-5)
    # The generic lookup knows PointMass too.
    r2 = jax.vmap(envs.reward_fn(ID))(flat.obs, flat.action, flat.next_obs)
    np.testing.assert_allclose(r2, flat.reward, atol=1e-5, rtol=1e-5)
    d = jax.vmap(envs.termination_fn(ID))(flat.obs, flat.action, flat.next_obs)
    assert not bool(jnp.any(d)) and not bool(jnp.any(flat.terminated))
    # Time limit only: truncation every 50 steps.
    t = np.arange(120)
    np.testing.assert_array_equal(tr.truncated, np.broadcast_to((t % 50 == 49)[:, None], (120, 4)))


def test_reward_fn_uses_params():
    params = jt.PointMassParams(action_cost=1.0)
    obs = jnp.zeros((2,), jnp.float32)
    next_obs = jnp.array([0.5, 0.0], jnp.float32)
    action = jnp.array([0.5], jnp.float32)
    np.testing.assert_allclose(jt.make_point_mass_reward_fn(params)(obs, action, next_obs), -(0.25 + 0.25))
    np.testing.assert_allclose(envs.reward_fn(ID, params)(obs, action, next_obs), -(0.25 + 0.25))
    np.testing.assert_allclose(jt.point_mass_reward_fn(obs, action, next_obs), -(0.25 + 0.01 * 0.25), rtol=1e-6)


def test_dynamics_are_the_documented_linear_system():
    env, params, _ = envs.make(ID, dim=1)
    _, state = env.reset(jax.random.PRNGKey(0), params)
    state = state.replace(position=jnp.array([0.5], jnp.float32), velocity=jnp.array([-0.2], jnp.float32))
    obs, next_state, reward, done, _ = env.step_env(jax.random.PRNGKey(0), state, jnp.array([2.0]), params)
    v = -0.2 + 0.1 * (1.0 - 0.1 * -0.2)  # force clipped to 1
    x = 0.5 + 0.1 * v
    np.testing.assert_allclose(obs, [x, v], rtol=1e-6)
    np.testing.assert_allclose(reward, -(x**2 + 0.01), rtol=1e-6)
    assert not bool(done) and int(next_state.time) == int(state.time) + 1


@pytest.mark.parametrize("dim", [1, 2])
def test_controller_beats_zero_and_random_actions(dim):
    env, params, spec = envs.make(ID, dim=dim)

    def episode(gain, noise):
        # gain * controller + noise * uniform random: (1, 0), (0, 0) and (0, 1) give the
        # controller, zero and random policies from one compiled program.
        def policy(key, obs):
            return gain * _pd(dim)(key, obs) + noise * envs.random_action(key, spec)

        # Same key, so every policy starts from the same initial states.
        tr = envs.rollout(env, params, spec, jax.random.PRNGKey(0), policy, 50, 32)
        return tr.reward.sum(0), tr.next_obs[-1]

    returns, final = jax.jit(jax.vmap(episode))(jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 0.0, 1.0]))
    controller, zero, random = returns
    assert float(controller.mean()) < 0.0
    assert float(controller.mean()) > 3.0 * float(zero.mean())
    assert float(controller.mean()) > 3.0 * float(random.mean())
    assert float(jnp.mean(controller >= zero)) > 0.9
    # It parks the point near the goal; doing nothing does not.
    assert float(jnp.max(jnp.abs(final[0, :, :dim]))) < 0.05
    assert float(jnp.max(jnp.abs(final[1, :, :dim]))) > 0.5


def test_bad_dim():
    with pytest.raises(ValueError):
        jt.PointMass(dim=0)
