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


# --- open the house: cached make, env objects, frozen kwargs ---------------------------


def _one_line_error(err_info):
    msg = str(err_info.value)
    assert "\n" not in msg, msg
    return msg


def test_make_returns_the_same_objects_for_the_same_id_and_kwargs():
    first = envs.make("Pendulum-v1", max_torque=1.5, max_steps_in_episode=7)
    again = envs.make("Pendulum-v1", max_steps_in_episode=7, max_torque=1.5)  # other order
    assert all(a is b for a, b in zip(first, again))
    other = envs.make("Pendulum-v1", max_torque=1.5, max_steps_in_episode=8)
    assert other[0] is not first[0] and other[1].max_steps_in_episode == 8
    # 2 == 2.0, but the params hold different types: not the same cache entry.
    as_int, as_float = envs.make("Pendulum-v1", max_torque=2)[1], envs.make("Pendulum-v1", max_torque=2.0)[1]
    assert type(as_int.max_torque) is int and type(as_float.max_torque) is float
    # A list-valued constructor argument is frozen for the key.
    maze = envs.make("DynaMaze", layout=["S.#G", "...."])
    assert envs.make("DynaMaze", layout=["S.#G", "...."])[0] is maze[0]
    assert maze[0].layout == ("S.#G", "....")
    # An unhashable value still builds (afresh each time).
    torque = jnp.asarray(3.0, jnp.float32)
    _, p1, spec = envs.make("Pendulum-v1", max_torque=torque)
    _, p2, _ = envs.make("Pendulum-v1", max_torque=torque)
    assert float(p1.max_torque) == 3.0 and spec.high == (3.0,) and p1 is not p2


def test_second_make_does_not_recompile():
    traces = []

    @functools.partial(jax.jit, static_argnums=0)
    def first_step(env, params, key):
        traces.append(None)
        obs, state = envs.reset(env, params, key)
        return envs.step(env, params, key, state, obs, jnp.zeros((), jnp.int32))[1]

    key = jax.random.PRNGKey(0)
    for _ in range(3):
        env, params, _ = envs.make("CartPole-v1", max_steps_in_episode=13)
        first_step(env, params, key).block_until_ready()
    assert len(traces) == 1
    # gymnax's own jitted `env.step` (static self) is shared the same way.
    env_a, params_a, _ = envs.make("CartPole-v1", max_steps_in_episode=13)
    closure = jax.jit(lambda k: envs.reset(env_a, params_a, k))
    env_b, params_b, _ = envs.make("CartPole-v1", max_steps_in_episode=13)
    assert (env_b, params_b) == (env_a, params_a) and env_b is env_a
    closure(key)


def test_register_replaces_cached_envs_of_that_id():
    layout_a, layout_b = ("S.G",), ("S..G",)
    envs.register("Chain-test-v0", lambda **kw: envs.DynaMaze(layout=layout_a, **kw))
    env_a, _, spec_a = envs.make("Chain-test-v0")
    assert "Chain-test-v0" in envs.registered_ids() and spec_a.obs_shape == (3,)
    assert envs.make("Chain-test-v0")[0] is env_a
    envs.register("Chain-test-v0", lambda **kw: envs.DynaMaze(layout=layout_b, **kw))
    env_b, _, spec_b = envs.make("Chain-test-v0")
    assert env_b is not env_a and spec_b.obs_shape == (4,)
    with pytest.raises(ValueError, match="non-empty string"):
        envs.register("", envs.DynaMaze)
    with pytest.raises(ValueError, match="Bad keyword"):
        envs.make("DynaMaze", no_such_argument=1)


class _MyEnv:
    """Not a gymnax env: no step, reset or spaces."""


@pytest.mark.parametrize("obj, name", [(_MyEnv(), "_MyEnv"), (_MyEnv, "_MyEnv"), (3, "int")], ids=["object", "class", "int"])
def test_make_rejects_objects_with_the_fix(obj, name):
    with pytest.raises(ValueError) as err:
        envs.make(obj)
    msg = _one_line_error(err)
    assert "make_train(config, env=obj)" in msg and "(obj, params)" in msg
    assert 'jaxmbrl.envs.register("MyEnv-v0",' in msg
    assert name in msg
    # An env object that is gymnax-shaped is refused the same way (resolve takes it).
    with pytest.raises(ValueError, match="make_train"):
        envs.make(envs.DynaMaze())


def test_freeze_kwargs_forms_are_equal_hashable_and_json_able():
    import json

    from flax.core import FrozenDict

    from_dict = envs.freeze_kwargs({"b": [1, [2, 3]], "a": 0.5, "c": None})
    from_pairs = envs.freeze_kwargs([("a", 0.5), ("c", None), ("b", (1, (2, 3)))])
    from_frozen = envs.freeze_kwargs(FrozenDict({"c": None, "a": 0.5, "b": [1, [2, 3]]}))
    assert isinstance(from_dict, FrozenDict)
    assert from_dict == from_pairs == from_frozen
    assert hash(from_dict) == hash(from_pairs) == hash(from_frozen)
    assert list(from_dict) == ["a", "b", "c"]
    assert from_dict["b"] == (1, (2, 3))
    assert json.loads(json.dumps(dict(from_dict))) == {"a": 0.5, "b": [1, [2, 3]], "c": None}
    assert envs.freeze_kwargs(None) == FrozenDict() == envs.freeze_kwargs({}) == envs.freeze_kwargs(())
    nested = envs.freeze_kwargs({"inner": {"y": [1], "x": 2}})
    hash(nested)
    assert list(nested["inner"]) == ["x", "y"]
    with pytest.raises((TypeError, ValueError)):
        from_dict["a"] = 1.0  # immutable


@pytest.mark.parametrize(
    "bad, words",
    [
        ("max_torque=2", "env_kwargs must be"),
        (3, "env_kwargs must be"),
        ([("a", 1), ("b",)], "env_kwargs must be"),
        ({1: 2}, "must be strings"),
        ([("a", 1), ("a", 2)], "appear twice"),
        ({"x": np.zeros(3)}, "cannot be hashed"),
        ({"x": [jnp.zeros(3)]}, "cannot be hashed"),
    ],
)
def test_freeze_kwargs_rejects_with_one_line(bad, words):
    with pytest.raises(ValueError) as err:
        envs.freeze_kwargs(bad)
    assert words in _one_line_error(err)


def test_resolve_by_id_is_make():
    from flax.core import FrozenDict

    made = envs.make("CartPole-v1", max_steps_in_episode=9)
    for kwargs in ({"max_steps_in_episode": 9}, FrozenDict({"max_steps_in_episode": 9}), [("max_steps_in_episode", 9)]):
        assert all(a is b for a, b in zip(envs.resolve("CartPole-v1", kwargs), made))
    assert envs.resolve("CartPole-v1")[0] is envs.make("CartPole-v1")[0]
    with pytest.raises(envs.UnknownEnvError, match="Did you mean CartPole-v1"):
        envs.resolve("CartPol-v1")
    with pytest.raises(ValueError, match="needs an env_id or an env object"):
        envs.resolve(None)


class _Unnamed(gymnax.environments.classic_control.cartpole.CartPole):
    """A user's env whose `name` says nothing: the spec falls back to the class name."""

    @property
    def name(self):
        return ""


def test_resolve_takes_env_objects_and_pairs():
    from gymnax.environments.classic_control.cartpole import CartPole

    obj = CartPole()
    env, params, spec = envs.resolve(None, {"max_steps_in_episode": 5}, env=obj)
    assert env is obj and params.max_steps_in_episode == 5 and spec.max_steps == 5
    assert params.x_threshold == obj.default_params.x_threshold
    assert spec.env_id == "CartPole-v1" and spec.discrete and spec.num_actions == 2
    assert envs.resolve("my-cartpole", None, env=obj)[2].env_id == "my-cartpole"
    assert envs.resolve("", None, env=_Unnamed())[2].env_id == "_Unnamed"
    # A pair: its params, with env_kwargs replaced on top.
    loose = obj.default_params.replace(x_threshold=9.0)
    _, params, spec = envs.resolve(None, {"max_steps_in_episode": 4}, env=(obj, loose))
    assert params.x_threshold == 9.0 and params.max_steps_in_episode == 4
    # The resolved env runs.
    obs, state = envs.reset(env, params, jax.random.PRNGKey(0))
    transition, _, _ = envs.step(env, params, jax.random.PRNGKey(1), state, obs, jnp.ones((), jnp.int32))
    assert transition.next_obs.shape == spec.obs_shape
    # make's triple is a pair too.
    made = envs.make("Pendulum-v1", max_torque=1.25)
    _, made_params, made_spec = envs.resolve(None, None, env=made)
    assert made_params is made[1] and made_spec == made[2]


def test_resolve_errors_are_one_line():
    from gymnax.environments.classic_control.cartpole import CartPole

    with pytest.raises(ValueError) as err:
        envs.resolve(None, {"gravity": 1.0, "nonsense": 2}, env=CartPole())
    msg = _one_line_error(err)
    assert "nonsense" in msg and "max_steps_in_episode" in msg and "x_threshold" in msg
    assert "gravity, nonsense" not in msg  # gravity is a field: only the unknown one is named

    class HalfEnv:
        def step(self):
            pass

    with pytest.raises(ValueError) as err:
        envs.resolve(None, None, env=HalfEnv())
    msg = _one_line_error(err)
    assert "HalfEnv" in msg and "has no reset, action_space, observation_space" in msg
    with pytest.raises(ValueError, match="has no step, reset"):
        envs.resolve("x", None, env=(object(), None))
    with pytest.raises(ValueError, match="got the string"):
        envs.resolve(None, None, env="CartPole-v1")
    with pytest.raises(ValueError, match="3-tuple"):
        envs.resolve(None, None, env=(CartPole(), None, None))


def test_true_model_takes_env_objects():
    from gymnax.environments.classic_control.cartpole import CartPole

    obj = CartPole()
    params = obj.default_params
    _, state = obj.reset_env(jax.random.PRNGKey(0), params)
    key, action = jax.random.PRNGKey(1), jnp.ones((), jnp.int32)
    _, ref_state, ref_reward, ref_done, _ = obj.step_env(key, state, action, params)
    for given in (obj, (obj, params)):
        model_fn, model_params = envs.true_model(given)
        next_state, reward, done = model_fn(key, model_params, state, action)
        jax.tree.map(np.testing.assert_array_equal, next_state, ref_state)
        assert float(reward) == float(ref_reward) and bool(done) == bool(ref_done)
    # Overrides: env_params replaces the env's, env_kwargs replace fields on top.
    _, model_params = envs.true_model(obj, params.replace(gravity=1.0), max_steps_in_episode=3)
    assert model_params.gravity == 1.0 and model_params.max_steps_in_episode == 3
    _, by_id = envs.true_model("CartPole-v1", params.replace(gravity=2.0), max_steps_in_episode=4)
    assert by_id.gravity == 2.0 and by_id.max_steps_in_episode == 4
    with pytest.raises(ValueError, match="valid fields"):
        envs.true_model(obj, nonsense=1)


def _weak_leaves(tree):
    return [jax.tree_util.keystr(p) for p, x in jax.tree_util.tree_leaves_with_path(tree) if x.weak_type]


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "DynaMaze"])
def test_reset_is_strongly_typed(env_id):
    env, params, _ = envs.make(env_id)
    key = jax.random.PRNGKey(0)
    raw = env.reset(key, params)
    if env_id != "DynaMaze":
        assert _weak_leaves(raw)  # gymnax's own reset holds `time=0`: the case guarded
    assert not _weak_leaves(envs.reset(env, params, key))
    assert not _weak_leaves(jax.jit(lambda k: envs.reset(env, params, k))(key))
    assert not _weak_leaves(envs.batch_reset(env, params, key, 3))
    obs, state = envs.reset(env, params, key)
    assert not _weak_leaves(envs.step(env, params, key, state, obs, jnp.zeros((), jnp.int32) if env_id != "Pendulum-v1" else jnp.zeros((1,), jnp.float32)))


def test_step_of_reset_stepped_and_restored_states_traces_once():
    env, params, spec = envs.make("CartPole-v1")
    traces = []

    @jax.jit
    def step(key, state, obs, action):
        traces.append(None)
        return envs.step(env, params, key, state, obs, action)

    key = jax.random.PRNGKey(0)
    action = jnp.zeros((), jnp.int32)
    obs, state = envs.reset(env, params, key)
    _, obs, state = step(key, state, obs, action)
    _, obs, state = step(key, state, obs, action)
    # As from a checkpoint: host arrays put back on the device, strongly typed.
    restored = jax.tree.map(lambda x: jnp.asarray(np.asarray(x)), (state, obs))
    step(key, *restored, action)
    assert len(traces) == 1
    # Batched likewise.
    traces.clear()

    @jax.jit
    def bstep(key, state, obs, action):
        traces.append(None)
        return envs.batch_step(env, params, key, state, obs, action)

    obs, state = envs.batch_reset(env, params, key, 2)
    actions = jnp.zeros((2,), jnp.int32)
    _, obs, state = bstep(key, state, obs, actions)
    bstep(key, state, obs, actions)
    assert len(traces) == 1


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "DynaMaze"])
def test_example_transition_matches_a_real_step(env_id):
    env, params, spec = envs.make(env_id)
    key = jax.random.PRNGKey(0)

    def one_step(key):
        obs, state = envs.reset(env, params, key)
        return envs.step(env, params, key, state, obs, envs.random_action(key, spec))[0]

    real = jax.eval_shape(one_step, key)
    example = envs.example_transition(spec)
    assert isinstance(example, Transition)
    shapes = lambda t: jax.tree.map(lambda x: (x.shape, x.dtype), t)  # noqa: E731
    assert shapes(example) == shapes(real)
    assert all(not bool(jnp.any(x)) for x in jax.tree.leaves(example))
    assert example.action.dtype == (jnp.int32 if spec.discrete else jnp.float32)
    assert example.action.shape == (() if spec.discrete else (spec.action_dim,))


def test_example_transition_takes_the_obs_dtype():
    _, _, spec = envs.make("CartPole-v1")
    ex = envs.example_transition(spec, jnp.ones(spec.obs_shape, jnp.int32))
    assert ex.obs.dtype == ex.next_obs.dtype == jnp.int32 and ex.obs.shape == spec.obs_shape
    ex = envs.example_transition(spec, jax.ShapeDtypeStruct(spec.obs_shape, jnp.bfloat16))
    assert ex.obs.dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="unbatched"):
        envs.example_transition(spec, jnp.zeros((8,) + spec.obs_shape))


def test_known_termination_and_never_terminates():
    obs = jnp.array([3.0, 0.0, 0.0, 0.0], jnp.float32)  # cart beyond x_threshold
    action = jnp.zeros((), jnp.int32)
    known = envs.known_termination("CartPole-v1")
    assert bool(known(obs, action, obs))
    _, params, _ = envs.make("CartPole-v1")
    assert not bool(envs.known_termination("CartPole-v1", params.replace(x_threshold=5.0))(obs, action, obs))
    assert envs.known_termination("Breakout-MinAtar") is None
    assert envs.known_termination("DynaMaze") is None
    assert envs.known_termination(None) is None
    assert envs.known_reward("Breakout-MinAtar") is None
    np.testing.assert_allclose(envs.known_reward("CartPole-v1")(obs, action, obs), 0.0)
    never = envs.never_terminates(obs, action, obs)
    assert never.shape == () and never.dtype == jnp.bool_ and not bool(never)
    batched = jax.jit(jax.vmap(envs.never_terminates))(jnp.stack([obs] * 3), jnp.zeros(3, jnp.int32), jnp.stack([obs] * 3))
    assert batched.shape == (3,) and not bool(jnp.any(batched))
    # Pendulum's known termination is the same never-terminating function.
    assert envs.known_termination("Pendulum-v1") is envs.never_terminates


def test_registered_ids_cover_gymnax_and_jaxmbrl_envs():
    ids = envs.registered_ids()
    assert set(gymnax.registered_envs) <= set(ids)
    assert "DynaMaze" in ids and "PointMass-jaxmbrl" in ids
    assert len(ids) == len(set(ids))
    env, _, spec = envs.make("DynaMaze")
    assert isinstance(env, envs.DynaMaze) and spec.env_id == "DynaMaze"
    env, _, spec = envs.make("PointMass-jaxmbrl", dim=2)
    assert spec.action_dim == 2 and "PointMass-jaxmbrl" in envs.known_ids()
