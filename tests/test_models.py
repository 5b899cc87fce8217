import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmbrl import buffers, envs, models


def _buffer(data, capacity=None):
    example = jax.tree.map(lambda a: a[0], data)
    capacity = capacity or data.reward.shape[0]
    return buffers.add(buffers.init(capacity, example), data)


def _small_ensemble(spec, **kw):
    kw.setdefault("learn_reward", True)
    return models.make_ensemble(spec.obs_dim, spec.action_dim, kw.pop("members", 3), kw.pop("elites", 2), kw.pop("hidden", (32, 32)), **kw)


def test_apply_shapes_and_dtypes(pendulum_data):
    spec, data, _ = pendulum_data
    ens = _small_ensemble(spec, learn_termination=True)
    mstate = models.init_model(ens, jax.random.PRNGKey(0), jax.tree.map(lambda a: a[0], data))
    x = jnp.zeros((3, 7, spec.obs_dim + spec.action_dim), jnp.float32)
    mean, logvar, term = ens.apply(mstate.params, x)
    assert mean.shape == (3, 7, spec.obs_dim + 1) and logvar.shape == mean.shape and term.shape == (3, 7)
    assert mean.dtype == jnp.float32
    pred = models.predict(ens, mstate, data.obs[0], data.action[0])
    assert pred.next_obs_mean.shape == (3, 3) and pred.reward_mean.shape == (3,)
    assert pred.termination_prob.shape == (3,)


def test_logvar_stays_inside_learned_soft_bounds(pendulum_data):
    spec, _, _ = pendulum_data
    ens = _small_ensemble(spec)
    params = ens.init(jax.random.PRNGKey(0))
    params["max_logvar"] = params["max_logvar"] - 1.0
    x = 1e3 * jax.random.normal(jax.random.PRNGKey(1), (3, 256, spec.obs_dim + spec.action_dim))
    _, logvar, _ = ens.apply(params, x)
    assert float(logvar.max()) <= float(params["max_logvar"].max()) + 1e-3
    assert float(logvar.min()) >= float(params["min_logvar"].min()) - 1e-3


def test_gaussian_nll_matches_hand_computation(pendulum_data):
    spec, data, _ = pendulum_data
    ens = _small_ensemble(spec)
    params = ens.init(jax.random.PRNGKey(3))
    x = jax.random.normal(jax.random.PRNGKey(4), (3, 5, spec.obs_dim + spec.action_dim))
    y = jax.random.normal(jax.random.PRNGKey(5), (3, 5, spec.obs_dim + 1))
    w = jnp.array([1, 1, 1, 1, 0], jnp.float32) * jnp.ones((3, 1))
    loss, mse = models.member_losses(ens, params, x, y, jnp.zeros((3, 5), bool), w)
    mean, logvar, _ = (np.asarray(a) for a in ens.apply(params, x))
    yn, wn = np.asarray(y), np.asarray(w)
    expected = []
    for e in range(3):
        rows = [
            0.5 * np.mean((mean[e, b] - yn[e, b]) ** 2 / np.exp(logvar[e, b]) + logvar[e, b])
            for b in range(4)
        ]
        penalty = 0.01 * (np.sum(params["max_logvar"][e]) - np.sum(params["min_logvar"][e]))
        expected.append(np.mean(rows) + penalty)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    np.testing.assert_allclose(mse, ((mean - yn) ** 2).mean(-1)[:, :4].mean(-1), rtol=1e-5)


def test_normaliser_uses_only_masked_rows():
    x = jnp.array([[1.0, 5.0], [3.0, 5.0], [100.0, -7.0]])
    norm = models.fit_normaliser(x, jnp.array([True, True, False]))
    np.testing.assert_allclose(norm.mean, [2.0, 5.0])
    # A constant feature gets unit scale instead of dividing by zero.
    np.testing.assert_allclose(norm.std, [1.0, 1.0])
    np.testing.assert_allclose(models.denormalise(norm, models.normalise(norm, x)), x, rtol=1e-6)


def test_fit_learns_pendulum_and_beats_deterministic_mlp_nll(pendulum_data):
    """Issue acceptance at test scale: 10k random transitions, smaller network."""
    spec, data, test = pendulum_data
    buf = _buffer(data)
    kw = dict(members=3, elites=3, hidden=(64, 64))
    ens = _small_ensemble(spec, **kw)
    det = _small_ensemble(spec, probabilistic=False, **dict(kw, members=1, elites=1))
    fit = lambda e: jax.jit(lambda m, k, b: models.fit(e, m, k, b, epochs=8, batch_size=64))
    mstate, info = fit(ens)(models.init_model(ens, jax.random.PRNGKey(0)), jax.random.PRNGKey(1), buf)
    dstate, _ = fit(det)(models.init_model(det, jax.random.PRNGKey(0)), jax.random.PRNGKey(1), buf)
    assert int(info.num_holdout) == 2000 and int(info.num_train) == 8000
    assert float(np.nanmin(info.train_loss)) < float(info.train_loss[0])
    metrics = models.evaluate(ens, mstate, test)
    # Held-out one-step error on the normalised obs delta: at most 1% of its variance.
    assert float(metrics.obs_delta_mse.max()) <= 0.01, metrics.obs_delta_mse
    # Deterministic baseline gets its best constant variance: the held-out residuals'.
    pred = jax.vmap(lambda o, a: models.predict(det, dstate, o, a))(test.obs, test.action)
    resid = jnp.concatenate(
        [pred.next_obs_mean[:, 0] - test.next_obs, (pred.reward_mean[:, 0] - test.reward)[:, None]], -1
    )
    det_metrics = models.evaluate(det, dstate, test, target_norm=mstate.target_norm,
                                  logvar_override=jnp.log((resid**2).mean(0)))
    ens_metrics = models.evaluate(ens, mstate, test, target_norm=mstate.target_norm)
    assert float(ens_metrics.mean_nll) < float(det_metrics.nll[0])


def test_fit_compiles_once_and_vmaps_over_seeds(pendulum_data):
    spec, data, _ = pendulum_data
    small = jax.tree.map(lambda a: a[:512], data)
    buf = _buffer(small, capacity=600)
    ens = _small_ensemble(spec, hidden=(16,))
    fit = jax.jit(lambda m, k, b: models.fit(ens, m, k, b, epochs=2, batch_size=32))
    mstate = models.init_model(ens, jax.random.PRNGKey(0))
    fit(mstate, jax.random.PRNGKey(1), buf)
    fit(mstate, jax.random.PRNGKey(2), buf)
    assert fit._cache_size() == 1

    def seeded(key):
        k_init, k_fit = jax.random.split(key)
        return models.fit(ens, models.init_model(ens, k_init), k_fit, buf, epochs=2, batch_size=32)[0]

    run = jax.jit(jax.vmap(seeded))
    keys = jax.random.split(jax.random.PRNGKey(7), 3)
    a, b = run(keys), run(keys)
    leaves_a, leaves_b = jax.tree.leaves(a.params), jax.tree.leaves(b.params)
    for la, lb in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(la, lb)
    w = a.params["net"]["params"]["Dense_0"]["kernel"]  # [seeds, E, In, H]
    assert not np.allclose(w[0], w[1]) and not np.allclose(w[0, 0], w[0, 1])


def test_early_stopping_keeps_each_members_best(pendulum_data):
    spec, data, _ = pendulum_data
    small = jax.tree.map(lambda a: a[:400], data)
    ens = _small_ensemble(spec, hidden=(32,), learning_rate=3e-2)
    mstate, info = jax.jit(
        lambda m, k: models.fit(ens, m, k, _buffer(small), epochs=30, batch_size=16, patience=2)
    )(models.init_model(ens, jax.random.PRNGKey(0)), jax.random.PRNGKey(1))
    hist = np.asarray(info.holdout_mse)  # [epochs, E]
    for e in range(3):
        trained = int(info.epochs_trained[e])
        assert 1 <= trained <= 30
        # The kept parameters score the best held-out MSE seen while the member trained.
        assert float(info.best_holdout_mse[e]) <= hist[:trained, e].min() * (1 + 1e-5) / (1 - 0.01) + 1e-9
        assert any(np.isclose(float(info.best_holdout_mse[e]), hist[:trained, e], rtol=1e-6))
    np.testing.assert_array_equal(mstate.elites, np.argsort(info.best_holdout_mse)[:2])
    assert int(info.epochs_trained.min()) < 30  # someone stopped early at this learning rate
    # Epochs after the last member stopped run no minibatches.
    last = int(info.epochs_trained.max())
    assert np.isnan(np.asarray(info.train_loss[last:])).all() and np.isfinite(info.train_loss[:last]).all()


@pytest.mark.parametrize("propagation", ["ts1", "tsinf", "expectation"])
def test_model_fn_single_and_over_particles(pendulum_data, propagation):
    spec, data, _ = pendulum_data
    ens = _small_ensemble(spec, members=4, elites=2)
    mstate = models.init_model(ens, jax.random.PRNGKey(0))
    mstate = mstate._replace(elites=jnp.array([3, 1], jnp.int32))
    model_fn = models.as_model_fn(ens, propagation, reward_fn=envs.reward_fn("Pendulum-v1"), sample=False)
    obs, action = data.obs[:6], data.action[0]
    per_member = jax.vmap(lambda o: models.predict(ens, mstate, o, action).next_obs_mean)(obs)  # [P, E, O]
    next_obs, reward, term = model_fn.over_particles(jax.random.PRNGKey(1), mstate, obs, action)
    assert next_obs.shape == (6, 3) and reward.shape == (6,) and term.shape == (6,) and not term.any()
    elites = np.asarray(mstate.elites)
    if propagation == "expectation":
        np.testing.assert_allclose(next_obs, per_member[:, elites].mean(1), rtol=1e-5, atol=1e-6)
    else:
        # Every particle follows one of the elites, never a non-elite member.
        dist = np.abs(np.asarray(next_obs)[:, None] - np.asarray(per_member)).sum(-1)  # [P, E]
        chosen = dist.argmin(-1)
        assert set(chosen.tolist()) <= set(elites.tolist())
        if propagation == "tsinf":
            np.testing.assert_array_equal(chosen, elites[np.arange(6) * 2 // 6])
    np.testing.assert_allclose(reward, jax.vmap(envs.reward_fn("Pendulum-v1"), (0, None, 0))(obs, action, next_obs), rtol=1e-6)
    single = model_fn(jax.random.PRNGKey(2), mstate, obs[0], action)
    assert single[0].shape == (3,) and single[1].shape == ()


def test_ts1_regroups_particles_every_call(pendulum_data):
    spec, data, _ = pendulum_data
    ens = _small_ensemble(spec, members=4, elites=4)
    mstate = models.init_model(ens, jax.random.PRNGKey(0))
    model_fn = models.as_model_fn(ens, "ts1", reward_fn=envs.reward_fn("Pendulum-v1"), sample=False)
    obs = jnp.broadcast_to(data.obs[0], (8, 3))
    outs = [model_fn.over_particles(jax.random.PRNGKey(i), mstate, obs, data.action[0])[0] for i in range(2)]
    assert not np.allclose(outs[0], outs[1])


def test_deterministic_model_and_learned_termination_on_cartpole():
    env, env_params, spec = envs.make("CartPole-v1")
    data = jax.jit(lambda k: envs.random_rollout(env, env_params, spec, k, 400, 8))(jax.random.PRNGKey(0))
    data = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), data)
    term = np.asarray(data.terminated)
    assert term.sum() > 20

    def recall_and_specificity(balance):
        ens = models.make_ensemble(spec.obs_dim, spec.action_dim, 1, 1, (64, 64), discrete_actions=True,
                                   learn_termination=True, probabilistic=False, learn_reward=True,
                                   balance_termination=balance)
        mstate, _ = jax.jit(lambda m, k: models.fit(ens, m, k, _buffer(data), epochs=15, batch_size=64))(
            models.init_model(ens, jax.random.PRNGKey(1)), jax.random.PRNGKey(2))
        pred = jax.vmap(lambda o, a: models.predict(ens, mstate, o, a))(data.obs, data.action)
        assert float(np.abs(pred.next_obs_mean[:, 0] - data.next_obs).mean()) < 0.05
        guessed = np.asarray(pred.termination_prob[:, 0]) > 0.5
        return guessed[term].mean(), (~guessed[~term]).mean()

    # A constant predictor gets recall 0 or specificity 0.
    recall, specificity = recall_and_specificity(True)
    assert recall > 0.9 and specificity > 0.9, (recall, specificity)
    # Unweighted, the rare terminal transitions are mostly missed.
    unbalanced_recall, _ = recall_and_specificity(False)
    assert unbalanced_recall < recall


def test_model_fn_requires_a_reward_source(pendulum_data):
    spec, _, _ = pendulum_data
    ens = models.make_ensemble(spec.obs_dim, spec.action_dim, 2, 2, (8,))
    with pytest.raises(ValueError, match="reward_fn"):
        models.as_model_fn(ens, "ts1")
    with pytest.raises(ValueError, match="propagation"):
        models.as_model_fn(ens, "ts2", reward_fn=envs.reward_fn("Pendulum-v1"))
    with pytest.raises(ValueError, match="num_elites"):
        models.make_ensemble(3, 1, 2, 3)
