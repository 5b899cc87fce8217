"""Tests for jaxmbrl.envs: known reward/termination functions and the env contract."""
import functools

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.environments import spaces

from jaxmbrl import envs
from jaxmbrl.types import Transition

KNOWN_IDS = ["Pendulum-v1", "CartPole-v1", "MountainCarContinuous-v0", "Acrobot-v1", "MountainCar-v0"]
ATOL = 1e-5


def _flatten(tree):
    """[T, B, ...] -> [T * B, ...]."""
    return jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), tree)


@functools.lru_cache(maxsize=None)
def _rollout(env_id, num_steps=300, num_envs=4, seed=0, **env_kwargs):
    env, params, spec = envs.make(env_id, **env_kwargs)
    run = jax.jit(envs.random_rollout, static_argnums=(0, 2, 4, 5))
    return run(env, params, spec, jax.random.PRNGKey(seed), num_steps, num_envs)


def _known_outputs(env_id, transitions, env_params=None):
    flat = _flatten(transitions)
    reward_fn = envs.reward_fn(env_id, env_params)
    termination_fn = envs.termination_fn(env_id, env_params)

    @jax.jit
    def apply(obs, action, next_obs):
        return jax.vmap(reward_fn)(obs, action, next_obs), jax.vmap(termination_fn)(obs, action, next_obs)

    return (flat, *apply(flat.obs, flat.action, flat.next_obs))


# --- known reward / termination functions on real rollouts ------------------------------


@pytest.mark.parametrize("env_id", KNOWN_IDS)
def test_known_fns_match_gymnax_on_random_rollouts(env_id):
    flat, r, d = _known_outputs(env_id, _rollout(env_id))
    assert r.shape == flat.reward.shape and r.dtype == jnp.float32
    assert d.shape == flat.terminated.shape and d.dtype == jnp.bool_
    np.testing.assert_allclose(r, flat.reward, atol=ATOL, rtol=1e-5)
    np.testing.assert_array_equal(d, flat.terminated)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "MountainCar-v0"])
def test_rollouts_include_episode_ends(env_id):
    # Guards the test above: its episodes must actually end (terminate or truncate).
    flat = _flatten(_rollout(env_id))
    assert bool(jnp.any(flat.terminated | flat.truncated))


def test_known_fns_respect_env_params():
    # A looser CartPole threshold changes which states terminate.
    _, params, _ = envs.make("CartPole-v1")
    loose = params.replace(x_threshold=100.0, theta_threshold_radians=100.0)
    flat = _flatten(_rollout("CartPole-v1"))
    assert bool(jnp.any(flat.terminated))
    d = jax.vmap(envs.termination_fn("CartPole-v1", loose))(flat.obs, flat.action, flat.next_obs)
    assert not bool(jnp.any(d))
    # Pendulum's torque clip comes from the params.
    _, pparams, _ = envs.make("Pendulum-v1")
    obs = jnp.array([1.0, 0.0, 0.0], jnp.float32)
    big = jnp.array([10.0], jnp.float32)
    r_default = envs.reward_fn("Pendulum-v1")(obs, big, obs)
    r_wide = envs.reward_fn("Pendulum-v1", pparams.replace(max_torque=10.0))(obs, big, obs)
    np.testing.assert_allclose(r_default, -0.001 * 2.0**2, rtol=1e-6)
    np.testing.assert_allclose(r_wide, -0.001 * 10.0**2, rtol=1e-6)


def _random_states(env_id, key, n):
    """Env states spread over the state space, including terminal and goal states that
    random rollouts rarely (MountainCarContinuous, Acrobot) or never (CartPole's reward
    from an already-terminal state) visit."""
    env, params, _ = envs.make(env_id)
    k_reset, k1, k2, k3, k4 = jax.random.split(key, 5)
    _, base = jax.vmap(env.reset_env, in_axes=(0, None))(jax.random.split(k_reset, n), params)
    u = lambda k, lo, hi: jax.random.uniform(k, (n,), jnp.float32, lo, hi)  # noqa: E731
    if env_id == "Pendulum-v1":
        return base.replace(theta=u(k1, -3 * jnp.pi, 3 * jnp.pi), theta_dot=u(k2, -8.0, 8.0))
    if env_id == "CartPole-v1":
        return base.replace(
            x=u(k1, -2.6, 2.6), x_dot=u(k2, -2.0, 2.0), theta=u(k3, -0.25, 0.25), theta_dot=u(k4, -2.0, 2.0)
        )
    if env_id in ("MountainCarContinuous-v0", "MountainCar-v0"):
        # Near and past the goal, moving either way.
        return base.replace(position=u(k1, 0.3, 0.6), velocity=u(k2, -0.07, 0.07))
    if env_id == "Acrobot-v1":
        return base.replace(
            joint_angle1=u(k1, -jnp.pi, jnp.pi),
            joint_angle2=u(k2, -jnp.pi, jnp.pi),
            velocity_1=u(k3, -2.0, 2.0),
            velocity_2=u(k4, -2.0, 2.0),
        )
    raise AssertionError(env_id)


@pytest.mark.parametrize("env_id", KNOWN_IDS)
def test_known_fns_match_gymnax_on_spread_states(env_id):
    env, params, spec = envs.make(env_id)
    n = 2000
    k_state, k_act, k_step = jax.random.split(jax.random.PRNGKey(1), 3)
    states = _random_states(env_id, k_state, n)
    actions = jax.vmap(envs.random_action, in_axes=(0, None))(jax.random.split(k_act, n), spec)

    @jax.jit
    def transition(key, state, action):
        obs = env.get_obs(state)
        next_obs, _, reward, terminated, _ = env.step_env(key, state, action, params)
        return obs, next_obs, reward, terminated

    obs, next_obs, reward, terminated = jax.vmap(transition)(jax.random.split(k_step, n), states, actions)
    r = jax.vmap(envs.reward_fn(env_id))(obs, actions, next_obs)
    d = jax.vmap(envs.termination_fn(env_id))(obs, actions, next_obs)
    np.testing.assert_allclose(r, reward, atol=ATOL, rtol=1e-5)
    np.testing.assert_array_equal(d, terminated)
    if env_id != "Pendulum-v1":
        # Both outcomes occur, so the comparison covers the terminal branch.
        assert 0 < int(jnp.sum(terminated)) < n
    if env_id == "CartPole-v1":
        assert bool(jnp.any(reward == 0.0)) and bool(jnp.any(reward == 1.0))


def test_mountain_car_continuous_goal_states():
    env, params, _ = envs.make("MountainCarContinuous-v0")
    reward_fn = envs.reward_fn("MountainCarContinuous-v0")
    term_fn = envs.termination_fn("MountainCarContinuous-v0")
    action = jnp.array([0.5], jnp.float32)
    # At the goal with zero velocity, past it moving right, and just short of it.
    obs = jnp.array([[0.45, 0.0], [0.55, 0.03], [0.40, 0.0]], jnp.float32)
    next_obs = jnp.array([[0.45, 0.0], [0.58, 0.03], [0.44, 0.04]], jnp.float32)
    d = jax.vmap(term_fn, in_axes=(0, None, 0))(obs, action, next_obs)
    r = jax.vmap(reward_fn, in_axes=(0, None, 0))(obs, action, next_obs)
    np.testing.assert_array_equal(d, [True, True, False])
    np.testing.assert_allclose(r, [100.0 - 0.025, 100.0 - 0.025, -0.025], rtol=1e-6)
    # And through gymnax itself: a car just below the goal, driven right, reaches it.
    _, state = env.reset_env(jax.random.PRNGKey(0), params)
    state = state.replace(position=jnp.float32(0.44), velocity=jnp.float32(0.05))
    next_obs, _, reward, terminated, _ = jax.jit(env.step_env)(jax.random.PRNGKey(0), state, action, params)
    assert bool(terminated)
    assert bool(term_fn(env.get_obs(state), action, next_obs))
    np.testing.assert_allclose(reward_fn(env.get_obs(state), action, next_obs), reward, atol=ATOL)


def test_unknown_id_for_known_fns():
    with pytest.raises(ValueError) as err:
        envs.reward_fn("Pendulum-v0")
    msg = str(err.value)
    assert "Pendulum-v0" in msg and "Did you mean Pendulum-v1" in msg
    for env_id in KNOWN_IDS:
        assert env_id in msg
    with pytest.raises(ValueError, match="Known ids"):
        envs.termination_fn("Breakout-MinAtar")


# --- the environment contract -------------------------------------------------------


def _pendulum_step_from_obs(obs, action, params):
    """Integrates Pendulum's ODE from an observation (the state is recoverable)."""
    theta = jnp.arctan2(obs[..., 1], obs[..., 0])
    u = jnp.clip(action[..., 0], -params.max_torque, params.max_torque)
    acc = 3 * params.g / (2 * params.l) * jnp.sin(theta) + 3.0 / (params.m * params.l**2) * u
    thdot = jnp.clip(obs[..., 2] + acc * params.dt, -params.max_speed, params.max_speed)
    new_theta = theta + thdot * params.dt
    return jnp.stack([jnp.cos(new_theta), jnp.sin(new_theta), thdot], axis=-1)


def test_pendulum_stored_transitions_are_true_successors():
    _, params, spec = envs.make("Pendulum-v1", max_steps_in_episode=3)
    assert spec.max_steps == 3
    tr = _rollout("Pendulum-v1", num_steps=30, num_envs=4, max_steps_in_episode=3)
    # Every stored next_obs, including the one of the last step, is the integrated
    # successor of obs: it never teleports to a reset state.
    np.testing.assert_allclose(tr.next_obs, _pendulum_step_from_obs(tr.obs, tr.action, params), atol=ATOL)
    t = np.arange(30)
    ends = (t % 3) == 2
    np.testing.assert_array_equal(tr.truncated, np.broadcast_to(ends[:, None], (30, 4)))
    assert not bool(jnp.any(tr.terminated))
    # Within an episode the next step starts where this one ended; after the time limit
    # it starts from a fresh reset observation, not from next_obs.
    same = np.all(np.isclose(tr.obs[1:], tr.next_obs[:-1], atol=1e-6), axis=-1)
    np.testing.assert_array_equal(same, ~np.broadcast_to(ends[:-1, None], (29, 4)))
    # Reset states of Pendulum have |theta_dot| <= 1.
    assert bool(jnp.all(jnp.abs(tr.obs[1:][ends[:-1]][..., 2]) <= 1.0))


def _episode_step(done):
    """1-based step count within the episode at each time, from [T, B] done flags."""
    t = np.arange(done.shape[0])[:, None]
    last_end = np.maximum.accumulate(np.where(done, t, -1), axis=0)
    prev_end = np.concatenate([np.full((1, done.shape[1]), -1), last_end[:-1]], axis=0)
    return t - prev_end


def test_cartpole_terminated_kept_apart_from_truncated():
    env, params, _ = envs.make("CartPole-v1", max_steps_in_episode=20)
    tr = _rollout("CartPole-v1", num_steps=300, num_envs=4, max_steps_in_episode=20)
    terminated, truncated = np.asarray(tr.terminated), np.asarray(tr.truncated)
    assert terminated.any() and truncated.any()
    # Terminations come from the state, truncations from the clock alone.
    out = (np.abs(tr.next_obs[..., 0]) > params.x_threshold) | (
        np.abs(tr.next_obs[..., 2]) > params.theta_threshold_radians
    )
    np.testing.assert_array_equal(terminated, out)
    np.testing.assert_array_equal(truncated, _episode_step(terminated | truncated) == 20)
    assert not np.any(terminated & ~out)
    assert (terminated & ~truncated).any() and (truncated & ~terminated).any()

    # Stored successors are the true dynamics (CartPole's obs is its state), even on
    # the terminal step; the next step then starts from a reset obs.
    model_fn, _ = envs.true_model("CartPole-v1", max_steps_in_episode=20)
    _, template = env.reset_env(jax.random.PRNGKey(0), params)

    def successor(obs, action):
        state = template.replace(x=obs[0], x_dot=obs[1], theta=obs[2], theta_dot=obs[3])
        next_state, _, _ = model_fn(jax.random.PRNGKey(0), params, state, action)
        return env.get_obs(next_state)

    flat = _flatten(tr)
    np.testing.assert_allclose(flat.next_obs, jax.vmap(successor)(flat.obs, flat.action), atol=ATOL)
    done = terminated | truncated
    same = np.all(np.asarray(tr.obs[1:]) == np.asarray(tr.next_obs[:-1]), axis=-1)
    np.testing.assert_array_equal(same, ~done[:-1])
    assert bool(jnp.all(jnp.abs(tr.obs[1:][done[:-1]]) <= 0.05))


def test_unknown_env_id_lists_ids_and_suggests():
    with pytest.raises(envs.UnknownEnvError) as err:
        envs.make("CartPol-v1")
    assert isinstance(err.value, ValueError)
    msg = str(err.value)
    assert "CartPol-v1" in msg and "Did you mean CartPole-v1" in msg
    for env_id in gymnax.registered_envs:
        assert env_id in msg


@pytest.mark.parametrize("env_id", [e for e in gymnax.registered_envs if e != "MNISTBandit-bsuite"])
def test_make_spec_is_consistent(env_id):
    env, params, spec = envs.make(env_id)
    assert spec.env_id == env_id
    key = jax.random.PRNGKey(0)
    # Shapes only: tracing the reset is enough and avoids compiling 25 environments.
    obs, _ = jax.eval_shape(env.reset, key, params)
    assert tuple(obs.shape) == spec.obs_shape
    assert spec.obs_dim == int(np.prod(obs.shape))
    space = env.action_space(params)
    assert spec.discrete == isinstance(space, spaces.Discrete)
    action = jax.eval_shape(lambda k: envs.random_action(k, spec), key)
    assert action.shape == spec.action_shape and action.dtype == spec.action_dtype
    if spec.discrete:
        assert spec.num_actions == space.n == spec.action_dim
        assert spec.low == () and spec.high == ()
    else:
        assert spec.num_actions == 0
        assert spec.action_dim == int(np.prod(space.shape or (1,)))
        assert len(spec.low) == len(spec.high) == spec.action_dim
        assert all(lo < hi for lo, hi in zip(spec.low, spec.high))
    assert spec.max_steps == params.max_steps_in_episode
    hash(spec)  # closed over by jitted functions


def test_make_routes_param_fields():
    _, params, spec = envs.make("Pendulum-v1", max_steps_in_episode=7, max_torque=1.5)
    assert params.max_steps_in_episode == 7 and spec.max_steps == 7
    assert params.max_torque == 1.5 and spec.high == (1.5,)


def test_random_action_within_bounds():
    for env_id in ["Pendulum-v1", "CartPole-v1"]:
        _, _, spec = envs.make(env_id)
        a = jax.vmap(envs.random_action, in_axes=(0, None))(jax.random.split(jax.random.PRNGKey(0), 500), spec)
        if spec.discrete:
            assert set(np.unique(a).tolist()) == set(range(spec.num_actions))
        else:
            assert bool(jnp.all((a >= spec.low[0]) & (a <= spec.high[0])))
            assert float(a.max() - a.min()) > 0.9 * (spec.high[0] - spec.low[0])


def test_encode_action():
    _, _, acro = envs.make("Acrobot-v1")
    one_hot = jax.vmap(lambda a: envs.encode_action(acro, a))(jnp.array([0, 2, 1], jnp.int32))
    np.testing.assert_array_equal(one_hot, np.eye(3, dtype=np.float32)[[0, 2, 1]])
    assert one_hot.dtype == jnp.float32
    _, _, pend = envs.make("Pendulum-v1")
    enc = envs.encode_action(pend, jnp.array([0.3], jnp.float32))
    assert enc.shape == (1,) and enc.dtype == jnp.float32
    np.testing.assert_allclose(enc, [0.3])


def test_true_model_reproduces_step_env():
    env, params, spec = envs.make("Pendulum-v1")
    model_fn, model_params = envs.true_model("Pendulum-v1")
    n = 64
    k_state, k_act, k_step = jax.random.split(jax.random.PRNGKey(3), 3)
    states = _random_states("Pendulum-v1", k_state, n)
    actions = jax.vmap(envs.random_action, in_axes=(0, None))(jax.random.split(k_act, n), spec)
    keys = jax.random.split(k_step, n)
    next_state, reward, terminated = jax.vmap(model_fn, in_axes=(0, None, 0, 0))(
        keys, model_params, states, actions
    )
    _, ref_state, ref_reward, ref_done, _ = jax.vmap(env.step_env, in_axes=(0, 0, 0, None))(
        keys, states, actions, params
    )
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), next_state, ref_state)
    np.testing.assert_allclose(reward, ref_reward, atol=1e-6)
    np.testing.assert_array_equal(terminated, ref_done)
    assert reward.dtype == jnp.float32 and terminated.dtype == jnp.bool_
    # The params argument is live: another gravity gives another successor.
    other, _, _ = jax.vmap(model_fn, in_axes=(0, None, 0, 0))(keys, params.replace(g=1.0), states, actions)
    assert not np.allclose(other.theta_dot, ref_state.theta_dot)


def test_batch_step_equals_per_env_step():
    env, params, spec = envs.make("CartPole-v1", max_steps_in_episode=2)
    b = 3
    key = jax.random.PRNGKey(5)
    obs, state = envs.batch_reset(env, params, key, b)
    actions = jnp.array([0, 1, 1], jnp.int32)
    # Two steps so the second one crosses the time limit and resets.
    batched = jax.jit(lambda *args: envs.batch_step(env, params, *args))
    per_env_step = jax.jit(
        lambda k, s, o, a: jax.lax.map(lambda args: envs.step(env, params, *args), (jax.random.split(k, b), s, o, a))
    )
    for step_key in jax.random.split(key, 2):
        transition, next_obs, next_state = batched(step_key, state, obs, actions)
        per_env = per_env_step(step_key, state, obs, actions)
        jax.tree.map(np.testing.assert_array_equal, (transition, next_obs, next_state), per_env)
        assert isinstance(transition, Transition)
        obs, state = next_obs, next_state
    assert bool(jnp.all(transition.truncated))
    assert not np.array_equal(transition.next_obs, next_obs)
