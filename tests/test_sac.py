import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmbrl.agents import sac
from jaxmbrl.types import Transition


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    # log p(a) = log N(u; m, s) - log |d tanh(u)/du| with a finite-difference Jacobian.
    mean = np.array([0.3, -1.2], np.float64)
    log_std = np.array([-0.5, 0.4], np.float64)
    for u in (np.array([0.1, -0.7]), np.array([2.5, 1.3]), np.array([-3.0, 0.0])):
        h = 1e-6
        jac = (np.tanh(u + h) - np.tanh(u - h)) / (2 * h)
        std = np.exp(log_std)
        gauss = -0.5 * ((u - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
        expected = np.sum(gauss - np.log(jac))
        got = sac.tanh_gaussian_log_prob(jnp.asarray(u, jnp.float32), jnp.asarray(mean, jnp.float32),
                                         jnp.asarray(log_std, jnp.float32))
        np.testing.assert_allclose(float(got), expected, rtol=1e-4, atol=1e-4)


def test_tanh_gaussian_density_matches_monte_carlo_histogram():
    mean, log_std = jnp.array([0.5]), jnp.array([0.2])
    actions, _ = sac.tanh_gaussian_sample(jax.random.PRNGKey(0), jnp.broadcast_to(mean, (200_000, 1)),
                                          jnp.broadcast_to(log_std, (200_000, 1)))
    hist, edges = np.histogram(np.asarray(actions[:, 0]), bins=20, range=(-0.9, 0.9), density=False)
    density = hist / (200_000 * (edges[1] - edges[0]))
    centres = 0.5 * (edges[1:] + edges[:-1])
    u = jnp.arctanh(jnp.asarray(centres, jnp.float32))[:, None]
    model = np.exp(np.asarray(sac.tanh_gaussian_log_prob(u, mean, log_std)))
    np.testing.assert_allclose(density, model, rtol=0.06, atol=0.01)


def test_stable_log_det_is_finite_where_the_naive_form_is_not():
    u = jnp.array([0.0, 5.0, 20.0, -30.0], jnp.float32)
    naive = jnp.log(1.0 - jnp.tanh(u) ** 2)
    stable = sac.tanh_log_det_jacobian(u)
    assert bool(jnp.isneginf(naive[2]))
    assert bool(jnp.all(jnp.isfinite(stable)))
    np.testing.assert_allclose(stable[:2], naive[:2], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stable[2:], 2 * (np.log(2) - np.abs([20.0, 30.0])), rtol=1e-6)


def test_td_target_stops_only_at_terminated():
    reward = jnp.array([1.0, 2.0])
    terminated = jnp.array([False, True])
    next_q = jnp.array([[3.0, 5.0], [4.0, 1.0]])  # [twin, B]: minima 3 and 1
    logp = jnp.array([0.5, 0.2])
    target = sac.td_target(reward, terminated, 0.9, next_q, logp, 0.1)
    np.testing.assert_allclose(target, [1.0 + 0.9 * (3.0 - 0.05), 2.0], rtol=1e-6)


def _batch(key, truncated):
    k1, k2, k3 = jax.random.split(key, 3)
    return Transition(
        obs=jax.random.normal(k1, (2, 3)), action=jax.random.uniform(k2, (2, 1), minval=-2, maxval=2),
        reward=jnp.array([1.0, -1.0]), next_obs=jax.random.normal(k3, (2, 3)),
        terminated=jnp.array([False, True]), truncated=jnp.asarray(truncated),
    )


def test_update_ignores_truncation_and_uses_termination():
    agent = sac.make_sac(3, 1, -2.0, 2.0, (8,))
    state = agent.init(jax.random.PRNGKey(0))
    hp = sac.SACHParams()
    key = jax.random.PRNGKey(1)
    update = jax.jit(agent.update)
    a, _ = update(state, _batch(key, [True, False]), hp, key)
    b, _ = update(state, _batch(key, [False, True]), hp, key)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    flipped = _batch(key, [True, False])._replace(terminated=jnp.array([True, True]))
    c, _ = update(state, flipped, hp, key)
    assert not np.allclose(c.critic_params["params"]["Dense_1"]["bias"], a.critic_params["params"]["Dense_1"]["bias"])


def test_zero_alpha_learning_rate_fixes_the_temperature():
    # mbrl-lib's "automatic entropy tuning off": the temperature stays at init_alpha while
    # the networks learn; a positive rate moves it on the same batches.
    agent = sac.make_sac(3, 1, -2.0, 2.0, (8,))
    update = jax.jit(agent.update)
    batch = _batch(jax.random.PRNGKey(2), [False, False])
    for rate, fixed in ((0.0, True), (0.1, False)):
        hp = sac.SACHParams(alpha_learning_rate=rate, init_alpha=0.2)
        state = start = agent.init(jax.random.PRNGKey(0), hp)
        for i in range(3):
            state, _ = update(state, batch, hp, jax.random.PRNGKey(i))
        assert (float(state.log_alpha) == float(start.log_alpha)) == fixed
        assert not np.allclose(state.actor_params["params"]["Dense_0"]["kernel"],
                               start.actor_params["params"]["Dense_0"]["kernel"])
    np.testing.assert_allclose(np.exp(float(start.log_alpha)), 0.2, rtol=1e-6)


def test_polyak_exact():
    params = {"w": jnp.array([1.0, 2.0]), "b": jnp.array(4.0)}
    target = {"w": jnp.array([3.0, 4.0]), "b": jnp.array(0.0)}
    out = sac.polyak(params, target, 0.25)
    np.testing.assert_allclose(out["w"], [2.5, 3.5])
    np.testing.assert_allclose(out["b"], 1.0)


def test_update_moves_targets_by_tau():
    agent = sac.make_sac(3, 1, hidden_sizes=(8,))
    state = agent.init(jax.random.PRNGKey(0))
    batch = _batch(jax.random.PRNGKey(2), [False, False])
    update = jax.jit(agent.update)
    hard, _ = update(state, batch, sac.SACHParams(target_tau=1.0), jax.random.PRNGKey(3))
    jax.tree.map(np.testing.assert_array_equal, hard.target_critic_params, hard.critic_params)
    frozen, _ = update(state, batch, sac.SACHParams(target_tau=0.0), jax.random.PRNGKey(3))
    jax.tree.map(np.testing.assert_array_equal, frozen.target_critic_params, state.target_critic_params)
    half, _ = update(state, batch, sac.SACHParams(target_tau=0.5), jax.random.PRNGKey(3))
    expected = jax.tree.map(lambda p, t: 0.5 * p + 0.5 * t, half.critic_params, state.target_critic_params)
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6), half.target_critic_params, expected)


def test_act_respects_bounds_and_deterministic_is_tanh_mean():
    agent = sac.make_sac(2, 2, low=[-1.0, 0.0], high=[3.0, 0.5], hidden_sizes=(8,))
    state = agent.init(jax.random.PRNGKey(0), sac.SACHParams(init_alpha=0.2))
    np.testing.assert_allclose(jnp.exp(state.log_alpha), 0.2, rtol=1e-6)
    obs = jax.random.normal(jax.random.PRNGKey(1), (500, 2)) * 5
    acts = jax.vmap(agent.act, in_axes=(0, None, 0, None))(jax.random.split(jax.random.PRNGKey(2), 500), state, obs, False)
    assert acts.shape == (500, 2)
    assert bool(jnp.all((acts >= jnp.array([-1.0, 0.0])) & (acts <= jnp.array([3.0, 0.5]))))
    mean, _ = agent.actor.apply(state.actor_params, obs[0])
    greedy = agent.act(jax.random.PRNGKey(9), state, obs[0], True)
    np.testing.assert_allclose(greedy, jnp.array([-1.0, 0.0]) + 0.5 * (jnp.tanh(mean) + 1) * jnp.array([4.0, 0.5]),
                               rtol=1e-6)


@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
def test_critic_learns_a_one_step_bandit(compute_dtype):
    # Terminal one-step task with reward = -action^2: Q(s, a) must learn the reward, with
    # bfloat16 products too (whose state stays float32).
    agent = sac.make_sac(1, 1, hidden_sizes=(32, 32), compute_dtype=compute_dtype)
    state = agent.init(jax.random.PRNGKey(0))
    hp = sac.SACHParams(critic_learning_rate=3e-3, actor_learning_rate=1e-3)

    def body(state, key):
        k_a, k_u = jax.random.split(key)
        action = jax.random.uniform(k_a, (64, 1), minval=-1, maxval=1)
        batch = Transition(jnp.zeros((64, 1)), action, -(action[:, 0] ** 2), jnp.zeros((64, 1)),
                           jnp.ones((64,), bool), jnp.zeros((64,), bool))
        return agent.update(state, batch, hp, k_u)

    state, _ = jax.jit(lambda s, k: jax.lax.scan(body, s, jax.random.split(k, 1500)))(state, jax.random.PRNGKey(1))
    grid = jnp.linspace(-1, 1, 9)[:, None]
    q = agent.q_values(state.critic_params, jnp.zeros((9, 1)), grid)
    np.testing.assert_allclose(q, jnp.broadcast_to(-(grid[:, 0] ** 2), (2, 9)), atol=0.1)
    greedy = agent.act(jax.random.PRNGKey(0), state, jnp.zeros((1,)), True)
    assert abs(float(greedy[0])) < 0.3
    assert all(leaf.dtype in (jnp.float32, jnp.int32) for leaf in jax.tree.leaves(state))


def test_make_sac_rejects_bad_bounds():
    with pytest.raises(ValueError, match="high > low"):
        sac.make_sac(3, 1, low=1.0, high=1.0)
    with pytest.raises(ValueError, match="Unknown compute_dtype 'float16'"):
        sac.make_sac(3, 1, compute_dtype="float16")


class _InlineActor(nn.Module):
    """The actor as it was written before `models.MLP` took its layers over."""

    action_dim: int
    hidden_sizes: tuple

    @nn.compact
    def __call__(self, x):
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width, param_dtype=jnp.float32)(x))
        return nn.Dense(2 * self.action_dim, param_dtype=jnp.float32)(x)


def test_networks_keep_their_parameter_tree_and_initial_values():
    agent = sac.make_sac(3, 2, hidden_sizes=(16, 8))
    state = agent.init(jax.random.PRNGKey(0))
    k_actor, k_critic = jax.random.split(jax.random.PRNGKey(0))
    ref = _InlineActor(2, (16, 8)).init(k_actor, jnp.zeros((3,)))
    assert jax.tree.structure(ref) == jax.tree.structure(state.actor_params)
    jax.tree.map(np.testing.assert_array_equal, ref, state.actor_params)
    obs = jax.random.normal(jax.random.PRNGKey(1), (4, 3))
    out = _InlineActor(2, (16, 8)).apply(ref, obs)
    mean, log_std = agent.actor.apply(state.actor_params, obs)
    np.testing.assert_array_equal(mean, out[:, :2])
    np.testing.assert_array_equal(log_std, jnp.clip(out[:, 2:], sac.LOG_STD_MIN, sac.LOG_STD_MAX))
    # Each twin critic: Dense_0 reads [obs, action], Dense_2 gives one value.
    assert state.critic_params["params"]["Dense_0"]["kernel"].shape == (2, 5, 16)
    assert state.critic_params["params"]["Dense_2"]["kernel"].shape == (2, 8, 1)


def test_learning_rates_are_read_at_every_update():
    agent = sac.make_sac(3, 1, hidden_sizes=(8,))
    state = agent.init(jax.random.PRNGKey(0))
    batch = _batch(jax.random.PRNGKey(2), [False, False])

    def run(actor_lr):
        hp = sac.SACHParams(actor_learning_rate=actor_lr)
        return agent.update(state, batch, hp, jax.random.PRNGKey(3))[0]

    swept = jax.jit(jax.vmap(run))(jnp.array([0.0, 1e-2], jnp.float32))
    frozen = jax.tree.map(lambda a: a[0], swept)
    moved = jax.tree.map(lambda a: a[1], swept)
    jax.tree.map(np.testing.assert_array_equal, frozen.actor_params, state.actor_params)
    assert not np.allclose(moved.actor_params["params"]["Dense_0"]["kernel"],
                           state.actor_params["params"]["Dense_0"]["kernel"])
    # The critic's rate was the same in both lanes.
    jax.tree.map(np.testing.assert_array_equal, frozen.critic_params, moved.critic_params)
