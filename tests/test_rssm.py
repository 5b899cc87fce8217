"""RSSM world model: shapes, KL balancing, learning, latent planning; lambda returns."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmbrl import envs, models, planning
from jaxmbrl.agents import actor_critic, returns

B, T, H = 3, 5, 4


def _rssm(obs_shape=(4,), action_dim=2, discrete=True, **kw):
    kw = {**dict(deter_size=8, stoch_size=3, classes=4, hidden_size=16, mlp_layers=1, cnn_depth=4), **kw}
    return models.make_rssm(obs_shape, action_dim, discrete_actions=discrete, **kw)


def test_observe_and_imagine_shapes():
    rssm = _rssm()
    params = rssm.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (B, T, 4))
    actions = jnp.zeros((B, T), jnp.int32)
    is_first = jnp.zeros((B, T), bool).at[:, 0].set(True)
    seq = models.observe(rssm, params, jax.random.PRNGKey(2), obs, actions, is_first)
    assert seq.posterior.deter.shape == (B, T, 8)
    assert seq.posterior.stoch.shape == (B, T, 3, 4)
    assert seq.post_logits.shape == seq.prior_logits.shape == (B, T, 3, 4)
    # Straight-through samples are exactly one-hot in value.
    np.testing.assert_allclose(seq.posterior.stoch.sum(-1), 1.0, atol=1e-6)
    assert set(np.unique(np.round(np.asarray(seq.posterior.stoch), 5))) <= {0.0, 1.0}

    policy = lambda key, feat: jax.random.randint(key, feat.shape[:1], 0, 2)
    start = jax.tree.map(lambda a: a[:, -1], seq.posterior)
    states, acts = models.imagine(rssm, params, jax.random.PRNGKey(3), policy, start, H)
    assert states.deter.shape == (B, H + 1, 8) and states.stoch.shape == (B, H + 1, 3, 4)
    assert acts.shape == (B, H)
    np.testing.assert_array_equal(states.deter[:, 0], start.deter)
    assert models.features(states).shape == (B, H + 1, 8 + 12)


def test_is_first_resets_the_state():
    rssm = _rssm()
    params = rssm.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (1, T, 4))
    actions = jnp.ones((1, T), jnp.int32)
    reset_at_2 = jnp.zeros((1, T), bool).at[:, 0].set(True).at[:, 2].set(True)
    full = models.observe(rssm, params, jax.random.PRNGKey(2), obs, actions, reset_at_2)
    tail = models.observe(rssm, params, jax.random.PRNGKey(2), obs[:, 2:], actions[:, 2:], reset_at_2[:, 2:])
    # The deterministic path after a reset depends only on the new episode.
    np.testing.assert_allclose(full.posterior.deter[:, 2], tail.posterior.deter[:, 0], atol=1e-6)
    np.testing.assert_allclose(full.prior_logits[:, 2], tail.prior_logits[:, 0], atol=1e-5)


def test_cnn_encoder_for_minatar_shaped_observations():
    rssm = _rssm(obs_shape=(10, 10, 4), action_dim=3)
    assert rssm.config.uses_cnn
    params = rssm.init(jax.random.PRNGKey(0))
    obs = jax.random.bernoulli(jax.random.PRNGKey(1), 0.2, (B, T, 10, 10, 4)).astype(jnp.float32)
    seq = models.observe(rssm, params, jax.random.PRNGKey(2), obs, jnp.zeros((B, T), jnp.int32),
                         jnp.ones((B, T), bool))
    recon = models.decode(rssm, params, models.features(seq.posterior))
    assert recon.shape == (B, T, 10, 10, 4)
    with pytest.raises(ValueError, match="encoder='cnn' needs image-like"):
        _rssm(encoder="cnn")


def test_kl_with_free_bits_is_never_below_the_floor():
    free = 1.0
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    post = 3.0 * jax.random.normal(keys[0], (64, 3, 4))
    prior = post + 0.01 * jax.random.normal(keys[1], post.shape)  # KL near 0 for most rows
    terms = models.kl_balanced(post, prior, free_bits=free, dyn_scale=0.5, rep_scale=0.1)
    assert (terms.dyn >= free).all() and (terms.rep >= free).all()
    assert (terms.raw < free).any()  # the floor was actually hit
    np.testing.assert_allclose(terms.loss, 0.5 * terms.dyn + 0.1 * terms.rep, rtol=1e-6)
    # Below the floor there is no gradient; above it, the dynamics term moves only the prior.
    g_post, g_prior = jax.grad(lambda a, b: models.kl_balanced(a, b, free).dyn.sum(), argnums=(0, 1))(post, prior)
    np.testing.assert_array_equal(g_post, 0.0)
    far = models.kl_balanced(post, -post, free_bits=free)
    assert (far.dyn > free).all()
    np.testing.assert_allclose(far.dyn, far.rep, rtol=1e-5)  # same value, different gradients
    np.testing.assert_allclose(far.dyn, far.raw, rtol=1e-5)


def test_categorical_kl_matches_a_hand_computed_case():
    # One latent, two classes, no mix: KL([.5,.5] || [.25,.75]).
    lhs = jnp.log(jnp.array([[0.5, 0.5]]))
    rhs = jnp.log(jnp.array([[0.25, 0.75]]))
    expected = 0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75)
    np.testing.assert_allclose(models.categorical_kl(lhs, rhs, unimix=0.0), expected, rtol=1e-6)


def test_symlog_inverts_and_compresses():
    x = jnp.array([-1000.0, -1.0, 0.0, 0.5, 1e4])
    np.testing.assert_allclose(models.symexp(models.symlog(x)), x, rtol=1e-5)
    assert float(models.symlog(jnp.float32(1e4))) < 10.0


def test_reconstruction_loss_falls_on_a_fixed_batch():
    rssm = _rssm(obs_shape=(3,), action_dim=1, discrete=False, deter_size=16, hidden_size=32)
    params = rssm.init(jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    obs = jax.random.normal(keys[0], (4, 10, 3))
    actions = jax.random.uniform(keys[1], (4, 10, 1), minval=-1, maxval=1)
    rewards = obs[..., 0]
    terminated = jnp.zeros((4, 10), bool)
    is_first = jnp.zeros((4, 10), bool).at[:, 0].set(True)
    opt = optax.adam(3e-3)

    def loss_fn(p, key):
        loss, (info, _) = models.world_model_loss(rssm, p, key, obs, actions, rewards, terminated, is_first)
        return loss, info

    @jax.jit
    def update(p, o, key):
        (_, info), g = jax.value_and_grad(loss_fn, has_aux=True)(p, key)
        u, o = opt.update(g, o)
        return optax.apply_updates(p, u), o, info

    o = opt.init(params)
    first = None
    for i in range(150):
        params, o, info = update(params, o, jax.random.PRNGKey(i))
        first = info if first is None else first
    assert float(info.reconstruction) < 0.3 * float(first.reconstruction)
    assert float(info.reward) < 0.5 * float(first.reward)


def test_latent_model_fn_drives_a_planner():
    rssm = _rssm(obs_shape=(3,), action_dim=1, discrete=False)
    params = rssm.init(jax.random.PRNGKey(0))
    _, _, spec = envs.make("Pendulum-v1")
    model_fn = models.latent_model_fn(rssm)
    start = models.initial_state(rssm)
    next_state, reward, terminated = model_fn(jax.random.PRNGKey(1), params, start, jnp.zeros((1,)))
    assert next_state.deter.shape == (8,) and reward.shape == () and terminated.dtype == jnp.bool_
    planner = planning.cem(model_fn, spec, horizon=3, num_samples=8, num_elites=2, num_iters=2)
    action, _, info = jax.jit(planner.plan)(jax.random.PRNGKey(2), planner.init(), params, start)
    assert action.shape == (1,) and np.isfinite(info.expected_return)
    assert -2.0 <= float(action[0]) <= 2.0


def test_lambda_return_matches_a_hand_computed_case():
    rewards = jnp.array([1.0, 2.0])
    discounts = jnp.array([0.5, 0.5])
    values = jnp.array([10.0, 20.0, 30.0])
    # R_1 = 2 + .5 (.5 * 30 + .5 * 30) = 17;  R_0 = 1 + .5 (.5 * 20 + .5 * 17) = 10.25.
    np.testing.assert_allclose(returns.lambda_returns(rewards, discounts, values, 0.5), [10.25, 17.0])
    # lambda = 0: one-step TD targets; lambda = 1: discounted Monte Carlo bootstrapped by v_T.
    np.testing.assert_allclose(returns.lambda_returns(rewards, discounts, values, 0.0), [11.0, 17.0])
    np.testing.assert_allclose(returns.lambda_returns(rewards, discounts, values, 1.0), [9.5, 17.0])


def test_lambda_returns_unbatched_equals_vmap_equals_jit():
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    r = jax.random.normal(keys[0], (4, 6))
    d = jax.random.uniform(keys[1], (4, 6))
    v = jax.random.normal(keys[2], (4, 7))
    batched = jax.vmap(returns.lambda_returns, in_axes=(0, 0, 0, None))(r, d, v, 0.9)
    jitted = jax.jit(jax.vmap(returns.lambda_returns, in_axes=(0, 0, 0, None)))(r, d, v, 0.9)
    for i in range(4):
        np.testing.assert_allclose(batched[i], returns.lambda_returns(r[i], d[i], v[i], 0.9), rtol=1e-6)
    np.testing.assert_allclose(jitted, batched, rtol=1e-6)


def test_return_scale_tracks_percentiles_and_never_goes_below_one():
    state = returns.return_scale_init()
    for _ in range(200):
        state = returns.return_scale_update(state, jnp.linspace(0.0, 100.0, 101), decay=0.9)
    np.testing.assert_allclose([state.low, state.high], [5.0, 95.0], rtol=1e-3)
    np.testing.assert_allclose(returns.scale(state), 90.0, rtol=1e-3)
    small = returns.return_scale_update(returns.return_scale_init(), jnp.zeros(10), decay=0.0)
    assert float(returns.scale(small)) == 1.0


@pytest.mark.parametrize("discrete", [True, False])
def test_actor_critic_update_moves_policy_towards_better_actions(discrete):
    # One-step imagined trajectories: action 1 (or a high continuous action) earns reward 1.
    ac = actor_critic.make_actor_critic(4, 2 if discrete else 1, discrete=discrete, low=-1.0, high=1.0,
                                        hidden_sizes=(16,))
    state = ac.init(jax.random.PRNGKey(0))
    hp = actor_critic.ActorCriticHParams(actor_learning_rate=1e-2, critic_learning_rate=1e-2, entropy=0.0)
    feats = jnp.ones((64, 2, 4))

    @jax.jit
    def one(state, key):
        actions = ac.act(key, state, feats[:, 0])
        good = (actions == 1) if discrete else (actions[:, 0] > 0)
        rewards = good.astype(jnp.float32)[:, None]
        return ac.update(state, feats, actions[:, None], rewards, jnp.ones((64, 1)), hp)

    for i in range(100):
        state, info = one(state, jax.random.PRNGKey(i))
    greedy = ac.act(jax.random.PRNGKey(0), state, feats[0, 0], True)
    if discrete:
        assert int(greedy) == 1
    else:
        assert float(greedy[0]) > 0.5
    assert np.isfinite(info.critic_loss)
    assert float(ac.value(state.critic_params, feats[0, 0])) > 0.5


def test_balanced_continue_loss_weights_the_rare_terminal_step_half():
    rssm = _rssm(obs_shape=(3,), action_dim=1, discrete=False)
    params = rssm.init(jax.random.PRNGKey(0))
    head = params["params"]["cont_head"]["Dense_0"]
    # A continue head that says logit 2 everywhere: BCE is log(1 + e^-2) for steps that go
    # on and 2 + log(1 + e^-2) for the terminal one.
    head["kernel"] = jnp.zeros_like(head["kernel"])
    head["bias"] = jnp.full_like(head["bias"], 2.0)
    obs = jax.random.normal(jax.random.PRNGKey(1), (4, 10, 3))
    actions = jnp.zeros((4, 10, 1))
    terminated = jnp.zeros((4, 10), bool).at[0, 9].set(True)
    is_first = jnp.zeros((4, 10), bool).at[:, 0].set(True)
    go_on, end = np.log1p(np.exp(-2.0)), 2.0 + np.log1p(np.exp(-2.0))
    infos = {}
    for balance in (False, True):
        _, (info, _) = models.world_model_loss(rssm, params, jax.random.PRNGKey(2), obs, actions, jnp.zeros((4, 10)),
                                               terminated, is_first, balance_continue=balance)
        infos[balance] = float(info.cont)
    np.testing.assert_allclose(infos[False], (39 * go_on + end) / 40, rtol=1e-5)
    np.testing.assert_allclose(infos[True], 0.5 * go_on + 0.5 * end, rtol=1e-5)
