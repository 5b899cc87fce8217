"""Planners: math on toy models, oracle control on the true gymnax dynamics, JAX contracts."""
from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmbrl.planning as planning
from jaxmbrl.envs import EnvSpec, make, true_model
from jaxmbrl.testing import oracle_episode_returns

PENDULUM, CARTPOLE = "Pendulum-v1", "CartPole-v1"

# Oracle settings (kept in step with scripts/oracle_planners.py --size test). With the
# true dynamics, near-optimal control averages about -155 over 32 random starts, and some
# sets of 8 starts average -195 even so: the fixed key below picks one set of starts
# (CEM scores -136 on them) and every planner is scored on the same starts.
PENDULUM_PLANNERS = {
    "random_shooting": (planning.random_shooting, dict(horizon=15, num_samples=4000)),
    "cem": (planning.cem, dict(horizon=20, num_samples=100, num_elites=10, num_iters=4)),
    "icem": (planning.icem, dict(horizon=20, num_samples=100, num_elites=10, num_iters=3)),
    "mppi": (planning.mppi, dict(horizon=20, num_samples=100, num_iters=2, lambda_=1.0)),
}
CARTPOLE_PLANNERS = {
    "discrete_random_shooting": (planning.discrete_random_shooting,
                                 dict(horizon=80, num_samples=64)),
    "discrete_cem": (planning.discrete_cem,
                     dict(horizon=80, num_samples=64, num_elites=8, num_iters=2)),
}
# Tiny settings for the contract tests (jit, vmap, traced hyperparameters).
SMALL = {
    "random_shooting": (PENDULUM, planning.random_shooting, dict(horizon=5, num_samples=16)),
    "cem": (PENDULUM, planning.cem, dict(horizon=5, num_samples=16, num_elites=4, num_iters=2)),
    "icem": (PENDULUM, planning.icem, dict(horizon=5, num_samples=16, num_elites=4, num_iters=2)),
    "mppi": (PENDULUM, planning.mppi, dict(horizon=5, num_samples=16, num_iters=2)),
    "discrete_random_shooting": (CARTPOLE, planning.discrete_random_shooting,
                                 dict(horizon=5, num_samples=16)),
    "discrete_cem": (CARTPOLE, planning.discrete_cem,
                     dict(horizon=5, num_samples=16, num_elites=4, num_iters=2)),
}


@functools.lru_cache(maxsize=None)
def _env(env_id):
    env, env_params, spec = make(env_id)
    model_fn, _ = true_model(env_id)
    return env, env_params, spec, model_fn


def _episode_returns(env_id, planner, key, num_episodes, num_steps):
    """Returns [num_episodes] of `planner` acting on the true env (rewards until done)."""
    return np.asarray(oracle_episode_returns(env_id, planner, num_episodes, num_steps)(key))


def _small_planner(name):
    env_id, factory, kwargs = SMALL[name]
    _, env_params, spec, model_fn = _env(env_id)
    return factory(model_fn, spec, **kwargs), env_params


def _env_states(env_id, num):
    env, env_params, _, _ = _env(env_id)
    keys = jax.random.split(jax.random.PRNGKey(3), num)
    return jax.vmap(lambda k: env.reset(k, env_params)[1])(keys)


# --- toy models ----------------------------------------------------------------------

TARGET = np.array([0.3, -0.5], np.float32)
BOX_SPEC = EnvSpec("Box2", (1,), 2, False, 0, (-1.0, -1.0), (1.0, 1.0), 10)


def quadratic_model(key, params, obs, action):
    """Reward -|a - target|^2; the state never changes."""
    return obs, -jnp.sum((action - params) ** 2), jnp.zeros((), jnp.bool_)


def counter_model(key, params, obs, action):
    """Reward 1 per step; the second transition terminates; NaN rewards afterwards."""
    next_obs = obs + 1
    reward = jnp.where(obs >= 2, jnp.nan, 1.0)
    return next_obs, reward, next_obs >= 2


def noisy_model(key, params, obs, action):
    """Reward is a fresh standard normal draw from the step's key."""
    return obs, jax.random.normal(key, ()), jnp.zeros((), jnp.bool_)


# --- oracle control ------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PENDULUM_PLANNERS))
def test_continuous_planner_solves_pendulum_with_true_dynamics(name):
    factory, kwargs = PENDULUM_PLANNERS[name]
    _, _, spec, model_fn = _env(PENDULUM)
    planner = factory(model_fn, spec, **kwargs)
    returns = _episode_returns(PENDULUM, planner, jax.random.PRNGKey(0), 8, 200)
    # Uniform random sequences are jittery, so random shooting needs many samples: over
    # 8 starts it averaged -200 with 1000 and -184 with 4000 (-153, -156, -137 on other
    # sets of starts). A zero-torque policy scores -1227 on these starts.
    assert returns.mean() >= -200.0, (name, returns)


@pytest.mark.parametrize("name", sorted(CARTPOLE_PLANNERS))
def test_discrete_planner_balances_cartpole_with_true_dynamics(name):
    factory, kwargs = CARTPOLE_PLANNERS[name]
    _, _, spec, model_fn = _env(CARTPOLE)
    planner = factory(model_fn, spec, **kwargs)
    returns = _episode_returns(CARTPOLE, planner, jax.random.PRNGKey(0), 4, 500)
    np.testing.assert_array_equal(returns, 500.0)


# --- math on toy models --------------------------------------------------------------

def test_cem_update_matches_hand_computation():
    mean = jnp.array([[0.0, 1.0]], jnp.float32)  # H=1, A=2
    std = jnp.array([[2.0, 2.0]], jnp.float32)
    samples = jnp.array([[[0.0, 0.0]], [[1.0, 4.0]], [[2.0, 0.0]], [[3.0, 2.0]]], jnp.float32)
    returns = jnp.array([0.0, 3.0, 1.0, 2.0], jnp.float32)
    # Elites: samples 1 and 3 -> mean (2, 3), population std (1, 1).
    new_mean, new_std = planning.cem_update(mean, std, samples, returns, 2, alpha=0.25)
    np.testing.assert_allclose(new_mean, [[0.25 * 0 + 0.75 * 2, 0.25 * 1 + 0.75 * 3]], rtol=1e-6)
    np.testing.assert_allclose(new_std, [[0.25 * 2 + 0.75 * 1, 0.25 * 2 + 0.75 * 1]], rtol=1e-6)


def test_cem_converges_to_quadratic_optimum():
    planner = planning.cem(quadratic_model, BOX_SPEC, horizon=3, num_samples=200, num_elites=20,
                           num_iters=8, alpha=0.1)
    action, state, info = jax.jit(planner.plan)(
        jax.random.PRNGKey(0), planner.init(), jnp.asarray(TARGET), jnp.zeros(()))
    np.testing.assert_allclose(info.plan, np.broadcast_to(TARGET, (3, 2)), atol=0.02)
    np.testing.assert_allclose(action, TARGET, atol=0.02)
    assert -1e-2 < float(info.expected_return) <= 0.0
    np.testing.assert_array_equal(state.mean, info.plan)


@pytest.mark.parametrize("name", ["random_shooting", "icem", "mppi"])
def test_other_continuous_planners_approach_quadratic_optimum(name):
    make_planner = {
        "random_shooting": lambda: planning.random_shooting(
            quadratic_model, BOX_SPEC, horizon=1, num_samples=2000),
        "icem": lambda: planning.icem(quadratic_model, BOX_SPEC, horizon=3, num_samples=200,
                                      num_elites=20, num_iters=6),
        "mppi": lambda: planning.mppi(quadratic_model, BOX_SPEC, horizon=3, num_samples=200,
                                      num_iters=8, lambda_=0.05, noise_std=0.3),
    }
    planner = make_planner[name]()
    action, _, _ = jax.jit(planner.plan)(
        jax.random.PRNGKey(1), planner.init(), jnp.asarray(TARGET), jnp.zeros(()))
    np.testing.assert_allclose(action, TARGET, atol=0.06)


def test_discrete_cem_finds_best_sequence():
    # Reward 1 when the action equals the step's preferred action, a count in obs.
    preferred = jnp.array([2, 0, 1, 2], jnp.int32)
    spec = EnvSpec("Choice3", (1,), 3, True, 3, (), (), 4)

    def model(key, params, obs, action):
        return obs + 1, (action == params[obs]).astype(jnp.float32), jnp.zeros((), jnp.bool_)

    planner = planning.discrete_cem(model, spec, horizon=4, num_samples=30, num_elites=5,
                                    num_iters=4)
    action, state, info = planner.plan(jax.random.PRNGKey(0), planner.init(), preferred,
                                       jnp.zeros((), jnp.int32))
    np.testing.assert_array_equal(info.plan, preferred)
    assert int(action) == 2 and float(info.expected_return) == 4.0
    np.testing.assert_array_equal(jnp.argmax(state.mean, -1), preferred)


def test_trajectory_return_masks_rewards_after_termination():
    obs = jnp.zeros((), jnp.int32)
    actions = jnp.zeros((6, 1), jnp.float32)
    key = jax.random.PRNGKey(0)
    ret = planning.trajectory_return(counter_model, None, key, obs, actions)
    assert float(ret) == 2.0
    ret = planning.trajectory_return(counter_model, None, key, obs, actions, 0.5, 3)
    assert float(ret) == 1.5
    # A planner reports the same masked value.
    planner = planning.random_shooting(counter_model, BOX_SPEC, horizon=6, num_samples=4)
    _, _, info = planner.plan(key, planner.init(), None, obs)
    assert float(info.expected_return) == 2.0


def test_trajectory_return_discounts_and_averages_distinct_particles():
    obs = jnp.zeros(())
    key = jax.random.PRNGKey(0)
    ones = lambda k, p, o, a: (o, jnp.ones(()), jnp.zeros((), jnp.bool_))  # noqa: E731
    ret = planning.trajectory_return(ones, None, key, obs, jnp.zeros((3, 1)), 0.9)
    np.testing.assert_allclose(ret, 1 + 0.9 + 0.81, rtol=1e-6)
    single = planning.trajectory_return(noisy_model, None, key, obs, jnp.zeros((1, 1)), 1.0, 1)
    many = planning.trajectory_return(noisy_model, None, key, obs, jnp.zeros((1, 1)), 1.0, 4000)
    # Distinct draws per particle average towards 0 (the std of the mean is ~0.016).
    assert abs(float(many)) < 0.06 and float(single) != float(many)


def test_random_shooting_keeps_a_better_warm_start():
    planner = planning.random_shooting(quadratic_model, BOX_SPEC, horizon=3, num_samples=4)
    previous = planning.PlannerState(mean=jnp.broadcast_to(jnp.asarray(TARGET), (3, 2)))
    action, state, _ = planner.plan(jax.random.PRNGKey(0), previous, jnp.asarray(TARGET),
                                    jnp.zeros(()))
    np.testing.assert_allclose(action, TARGET)
    np.testing.assert_allclose(state.mean[:2], np.broadcast_to(TARGET, (2, 2)))


def test_shift_drops_first_step_and_appends_fill():
    seq = jnp.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(planning.shift(seq, jnp.array([-1.0, -2.0])),
                                  [[2, 3], [4, 5], [-1, -2]])


@pytest.mark.parametrize("t", [16, 15])
def test_colored_noise_has_unit_variance_and_its_beta_sets_smoothness(t):
    key = jax.random.PRNGKey(0)
    for beta, min_corr, max_corr in [(0.0, -0.05, 0.05), (2.0, 0.5, 1.0)]:
        x = np.asarray(planning.colored_noise(key, beta, (20000, t)))
        assert x.shape == (20000, t) and x.dtype == np.float32
        np.testing.assert_allclose(x.var(0), 1.0, atol=0.06)
        np.testing.assert_allclose(x.mean(0), 0.0, atol=0.06)
        corr = np.mean(x[:, 1:] * x[:, :-1])
        assert min_corr < corr < max_corr, (beta, corr)


# --- JAX contracts -------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(SMALL))
def test_jit_plan_compiles_once_and_vmap_matches_single_calls(name):
    env_id = SMALL[name][0]
    planner, env_params = _small_planner(name)
    spec = _env(env_id)[2]
    states = _env_states(env_id, 64)
    first = jax.tree.map(lambda x: x[0], states)

    jitted = jax.jit(planner.plan)
    a1, s1, _ = jitted(jax.random.PRNGKey(0), planner.init(), env_params, first)
    a2, _, _ = jitted(jax.random.PRNGKey(1), s1, env_params, first)
    assert jitted._cache_size() == 1
    assert a1.dtype == spec.action_dtype and a1.shape == spec.action_shape
    a1_again, _, _ = jitted(jax.random.PRNGKey(0), planner.init(), env_params, first)
    np.testing.assert_array_equal(a1, a1_again)

    keys = jax.random.split(jax.random.PRNGKey(2), 64)
    pstates = jax.vmap(lambda _: planner.init())(jnp.arange(64))
    batched = jax.jit(jax.vmap(planner.plan, in_axes=(0, 0, None, 0)))(
        keys, pstates, env_params, states)
    for i in range(64):
        single = jitted(keys[i], planner.init(), env_params, jax.tree.map(lambda x: x[i], states))
        for b, s in zip(jax.tree.leaves(batched), jax.tree.leaves(single)):
            np.testing.assert_allclose(b[i], s, rtol=1e-5, atol=1e-5)
    actions = np.asarray(batched[0])
    assert len(np.unique(actions.round(5), axis=0)) > 1  # different states, different actions
    if not spec.discrete:
        assert (actions >= np.array(spec.low)).all() and (actions <= np.array(spec.high)).all()
        assert (np.asarray(batched[2].plan) <= np.array(spec.high)).all()
        assert (np.asarray(batched[2].plan) >= np.array(spec.low)).all()


@pytest.mark.parametrize("name", ["cem", "icem", "mppi", "discrete_cem"])
def test_planner_built_with_traced_float_hyperparameters(name):
    env_id, factory, kwargs = SMALL[name]
    _, env_params, spec, model_fn = _env(env_id)
    obs = jax.tree.map(lambda x: x[0], _env_states(env_id, 1))
    floats = {
        "cem": dict(alpha=(0.1, 0.6), discount=(0.99, 0.9)),
        "icem": dict(alpha=(0.1, 0.6), beta=(2.0, 0.5), gamma=(1.25, 2.0),
                     keep_fraction=(0.3, 1.0), discount=(0.99, 0.9)),
        "mppi": dict(alpha=(0.0, 0.6), lambda_=(1.0, 10.0), noise_std=(0.5, 1.0),
                     discount=(0.99, 0.9)),
        "discrete_cem": dict(alpha=(0.1, 0.6), uniform_mix=(0.3, 1.0), discount=(0.99, 0.9)),
    }[name]
    hparams = {k: jnp.asarray(v, jnp.float32) for k, v in floats.items()}
    key = jax.random.PRNGKey(0)

    def run(hp):
        planner = factory(model_fn, spec, **kwargs, **hp)
        return planner.plan(key, planner.init(), env_params, obs)

    _, states, infos = jax.jit(jax.vmap(run))(hparams)
    assert np.isfinite(np.asarray(infos.expected_return)).all()
    # The sweep points are really different planners: their refit solutions differ.
    assert not np.allclose(states.mean[0], states.mean[1])
    # The first sweep point equals the planner built from Python floats.
    python_floats = {k: v[0] for k, v in floats.items()}
    _, state, info = jax.jit(lambda: run(python_floats))()
    np.testing.assert_allclose(states.mean[0], state.mean, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(infos.plan[0], info.plan, rtol=1e-4, atol=1e-4)


# --- validation ----------------------------------------------------------------------

_PEND, _CART = _env(PENDULUM)[2], _env(CARTPOLE)[2]
_OK = dict(horizon=5, num_samples=10, num_elites=2)
_BAD = [
    (planning.cem, _CART, _OK, "cem needs a continuous action space; CartPole-v1 is discrete "
                               "(2 actions): use discrete_cem or discrete_random_shooting"),
    (planning.random_shooting, _CART, dict(horizon=5, num_samples=10),
     "random_shooting needs a continuous"),
    (planning.mppi, _CART, dict(horizon=5, num_samples=10), "mppi needs a continuous"),
    (planning.icem, _CART, _OK, "icem needs a continuous"),
    (planning.discrete_cem, _PEND, _OK, "discrete_cem needs a discrete action space; "
                                        "Pendulum-v1 is continuous"),
    (planning.discrete_random_shooting, _PEND, dict(horizon=5, num_samples=10),
     "use cem, icem, mppi or random_shooting"),
    (planning.cem, _PEND, {**_OK, "horizon": 0}, "horizon must be >= 1"),
    (planning.cem, _PEND, {**_OK, "horizon": 2.5}, "horizon must be a Python int"),
    (planning.cem, _PEND, {**_OK, "num_samples": 0}, "num_samples must be >= 1"),
    (planning.cem, _PEND, {**_OK, "num_elites": 0}, "num_elites must be >= 1"),
    (planning.cem, _PEND, {**_OK, "num_elites": 11}, "num_elites=11 exceeds num_samples=10"),
    (planning.icem, _PEND, {**_OK, "num_elites": 20}, "lower num_elites or raise num_samples"),
    (planning.discrete_cem, _CART, {**_OK, "num_elites": 11}, "num_elites=11 exceeds"),
    (planning.cem, _PEND, {**_OK, "num_iters": 0}, "num_iters must be >= 1"),
    (planning.cem, _PEND, {**_OK, "num_particles": 0}, "num_particles must be >= 1"),
    (planning.discrete_random_shooting, _CART, dict(horizon=5, num_samples=10, num_particles=0),
     "num_particles"),
    (planning.mppi, _PEND, dict(horizon=0, num_samples=10), "mppi: horizon must be >= 1"),
    (planning.cem, _PEND, {**_OK, "alpha": 1.0}, "alpha must lie in [0.0, 1.0)"),
    (planning.cem, _PEND, {**_OK, "discount": 1.5}, "discount must lie in [0.0, 1.0]"),
    (planning.mppi, _PEND, dict(horizon=5, num_samples=10, lambda_=0.0), "lambda_"),
    (planning.mppi, _PEND, dict(horizon=5, num_samples=10, noise_std=-1.0), "noise_std"),
    (planning.icem, _PEND, {**_OK, "gamma": 0.5}, "gamma"),
    (planning.icem, _PEND, {**_OK, "keep_fraction": 1.5}, "keep_fraction"),
    (planning.discrete_cem, _CART, {**_OK, "uniform_mix": -0.1}, "uniform_mix"),
]


@pytest.mark.parametrize("factory,spec,kwargs,message", _BAD,
                         ids=[f"{i:02d}-{case[0].__name__}" for i, case in enumerate(_BAD)])
def test_bad_settings_raise_value_error(factory, spec, kwargs, message):
    model_fn = _env(spec.env_id)[3]
    with pytest.raises(ValueError, match=re.escape(message)):
        factory(model_fn, spec, **kwargs)


def test_trajectory_return_uses_a_models_over_particles_path():
    """A model that steps its particles jointly is called with all P at once."""

    class Grouped:
        def __call__(self, key, params, obs, action):
            raise AssertionError("the per-particle path must not be used")

        def over_particles(self, key, params, obs, action):
            # Reward = particle index: only a joint call can know it.
            return obs, jnp.arange(obs.shape[0], dtype=jnp.float32), jnp.zeros(obs.shape[0], bool)

    actions = jnp.zeros((3, 1), jnp.float32)
    value = planning.trajectory_return(Grouped(), None, jax.random.PRNGKey(0), jnp.zeros(2), actions,
                                       discount=0.5, num_particles=4)
    # mean over p of p * (1 + 0.5 + 0.25)
    np.testing.assert_allclose(value, 1.5 * 1.75)
