import dataclasses
import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxmbrl import buffers, envs, models, testing


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


@pytest.mark.slow  # a learning test; fit's mechanics (early stopping, vmap, jit) run by default below
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


# --- the batched, elite-grouped model step ---------------------------------------------


def _scrambled_state(ens, seed=0):
    """A ModelState whose normalisers and elite order are not the identity."""
    cfg = ens.config
    mstate = models.init_model(ens, jax.random.PRNGKey(seed))
    k = jax.random.split(jax.random.PRNGKey(seed + 1), 4)
    return mstate._replace(
        input_norm=models.Normaliser(jax.random.normal(k[0], (cfg.input_dim,)),
                                     0.5 + jax.random.uniform(k[1], (cfg.input_dim,))),
        target_norm=models.Normaliser(0.1 * jax.random.normal(k[2], (cfg.target_dim,)),
                                      0.2 + jax.random.uniform(k[3], (cfg.target_dim,))),
        elites=jnp.array([3, 0, 2], jnp.int32)[: cfg.num_elites],
    )


def _discrete_ensemble():
    return models.make_ensemble(4, 2, 4, 3, (16,), discrete_actions=True, learn_reward=True,
                                learn_termination=True)


def _rows(n, seed=0):
    k_obs, k_act = jax.random.split(jax.random.PRNGKey(seed))
    return jax.random.normal(k_obs, (n, 4)), jax.random.randint(k_act, (n,), 0, 2)


def _member_of_each_row(ens, mstate, obs, action, pred):
    """Which member produced each row of `pred` (compared with every member's own output)."""
    per_member = jax.vmap(lambda o, a: models.predict(ens, mstate, o, a))(obs, action)  # [N, E, ...]
    dist = np.abs(np.asarray(pred.next_obs_mean)[:, None] - np.asarray(per_member.next_obs_mean)).sum(-1)
    assert np.allclose(dist.min(-1), 0.0, atol=1e-5), "a row matches no member"
    return dist.argmin(-1)


@pytest.mark.parametrize("n", [7, 9, 3])
def test_fixed_grouped_step_equals_per_row_reference(n):
    ens = _discrete_ensemble()
    mstate = _scrambled_state(ens)
    obs, action = _rows(n)
    pred = jax.jit(lambda k, o, a: models.ensemble_step(ens, mstate, k, o, a, "fixed"))(
        jax.random.PRNGKey(0), obs, action)
    elites = np.asarray(mstate.elites)
    for p in range(n):
        # The reference: row p through its member's parameters alone.
        member = int(elites[p * 3 // n])
        ref = models.predict(ens, mstate, obs[p], action[p])
        for got, want in zip(pred, ref):
            np.testing.assert_allclose(got[p], want[member], rtol=1e-5, atol=1e-6)
    # Groups: floor or ceil of N / K rows each, never empty.
    sizes = np.bincount(np.arange(n) * 3 // n, minlength=3)
    assert sizes.min() >= n // 3 and sizes.max() <= -(-n // 3)
    row_of_slot, slot_of_row = models.fixed_groups(n, 3)
    np.testing.assert_array_equal(row_of_slot[slot_of_row], np.arange(n))


def test_random_assignment_gives_balanced_groups_and_uniform_elites():
    ens = _discrete_ensemble()
    mstate = _scrambled_state(ens)
    step = jax.jit(lambda k, o, a: models.ensemble_step(ens, mstate, k, o, a, "random"))
    obs, action = _rows(12)
    members = [_member_of_each_row(ens, mstate, obs, action, step(jax.random.PRNGKey(i), obs, action))
               for i in range(3)]
    for chosen in members:
        # K divides N: every elite predicts exactly N / K rows, never a non-elite.
        assert sorted(np.bincount(chosen, minlength=4)[np.asarray(mstate.elites)]) == [4, 4, 4]
        assert np.bincount(chosen, minlength=4)[1] == 0
    assert not all((m == members[0]).all() for m in members[1:])
    # Ragged N: each row still follows one elite, no elite exceeds its G = ceil(N / K) slots.
    obs7, action7 = _rows(7, seed=1)
    chosen = _member_of_each_row(ens, mstate, obs7, action7, step(jax.random.PRNGKey(5), obs7, action7))
    assert np.bincount(chosen, minlength=4).max() <= 3
    # One row: a uniformly random elite.
    keys = jax.random.split(jax.random.PRNGKey(9), 600)
    one = jax.vmap(lambda k: step(k, obs[:1], action[:1]).next_obs_mean[0])(keys)
    per_member = models.predict(ens, mstate, obs[0], action[0]).next_obs_mean  # [E, O]
    picked = np.abs(np.asarray(one)[:, None] - np.asarray(per_member)).sum(-1).argmin(-1)
    freq = np.bincount(picked, minlength=4) / 600
    np.testing.assert_allclose(freq[np.asarray(mstate.elites)], 1 / 3, atol=0.07)
    assert freq[1] == 0


def _prediction(n, obs_dim, term_prob, std):
    return models.Prediction(
        next_obs_mean=jnp.zeros((n, obs_dim)), next_obs_logvar=jnp.full((n, obs_dim), 2 * np.log(std)),
        reward_mean=jnp.ones((n,)), reward_logvar=jnp.full((n,), 2 * np.log(std)),
        termination_prob=jnp.full((n,), term_prob),
    )


def test_sample_prediction_draws_and_means():
    cfg = _discrete_ensemble().config
    n = 4000
    obs, action = jnp.zeros((n, 4)), jnp.zeros((n,), jnp.int32)
    sample = jax.jit(lambda k, pred, s: models.sample_prediction(cfg, k, pred, obs, action, sample=s),
                     static_argnums=2)
    next_obs, reward, term = sample(jax.random.PRNGKey(0), _prediction(n, 4, 0.3, 2.0), True)
    assert next_obs.shape == (n, 4) and reward.dtype == jnp.float32 and term.dtype == jnp.bool_
    np.testing.assert_allclose(np.std(next_obs), 2.0, rtol=0.05)
    np.testing.assert_allclose([np.mean(reward), np.std(reward)], [1.0, 2.0], atol=0.1)
    # The Bernoulli draw keeps the predicted termination rate.
    assert abs(float(term.mean()) - 0.3) < 0.03
    next_obs, reward, term = sample(jax.random.PRNGKey(0), _prediction(n, 4, 0.3, 2.0), False)
    assert float(jnp.abs(next_obs).max()) == 0.0 and bool((reward == 1.0).all()) and not term.any()
    assert sample(jax.random.PRNGKey(0), _prediction(n, 4, 0.7, 2.0), False)[2].all()
    # Known functions replace the learned heads.
    known = models.sample_prediction(cfg, jax.random.PRNGKey(1), _prediction(n, 4, 0.3, 2.0), obs, action,
                                     reward_fn=lambda o, a, no: no.sum(),
                                     termination_fn=lambda o, a, no: no[0] > 0)
    np.testing.assert_allclose(known[1], known[0].sum(-1), rtol=1e-6)
    np.testing.assert_array_equal(known[2], known[0][:, 0] > 0)
    # A deterministic ensemble has no variance to draw from.
    det_cfg = dataclasses.replace(cfg, probabilistic=False)
    assert float(jnp.abs(models.sample_prediction(det_cfg, jax.random.PRNGKey(2), _prediction(n, 4, 0.3, 2.0),
                                                  obs, action)[0]).max()) == 0.0


# --- the model protocol ----------------------------------------------------------------


def test_ensemble_model_init_fit_step_under_jit(pendulum_data):
    spec, data, test = pendulum_data
    buf = _buffer(jax.tree.map(lambda a: a[:600], data), capacity=800)
    ens = _small_ensemble(spec, hidden=(16,))
    model = models.ensemble_model(ens, propagation="ts1", epochs=3, batch_size=64, patience=0)
    example = jax.tree.map(lambda a: a[0], data)
    hp = models.ModelHParams(learning_rate=3e-3, weight_decay=1e-4, holdout_ratio=0.25)
    mstate = jax.jit(model.init)(jax.random.PRNGKey(0), example, hp)
    np.testing.assert_allclose(mstate.opt_state.hyperparams["learning_rate"], 3e-3, rtol=1e-6)
    np.testing.assert_allclose(mstate.opt_state.hyperparams["weight_decay"], 1e-4, rtol=1e-6)

    fit = jax.jit(model.fit)
    fitted, info = fit(jax.random.PRNGKey(1), mstate, buf, hp)
    fit(jax.random.PRNGKey(2), mstate, buf, hp._replace(learning_rate=1e-3, holdout_ratio=0.1))
    assert fit._cache_size() == 1
    assert info.train_loss.shape == () and info.holdout_mse.shape == ()
    assert info.train_loss.dtype == jnp.float32 and np.isfinite([info.train_loss, info.holdout_mse]).all()
    # The summary is what the algorithms computed by hand from `models.fit`.
    direct, full = models.fit(ens, mstate, jax.random.PRNGKey(1), buf, epochs=3, batch_size=64,
                              holdout_ratio=0.25, patience=0)
    np.testing.assert_allclose(info.train_loss, full.train_loss[-1], rtol=1e-4)
    np.testing.assert_allclose(info.holdout_mse, full.best_holdout_mse[direct.elites].mean(), rtol=1e-4)
    assert int(full.num_holdout) == 150
    # Without early stopping the cap ends the fit. With it and a held-out error that
    # cannot improve (learning rate 0), every member stops after `patience` epochs.
    assert info.epochs.dtype == jnp.float32 and float(info.epochs) == 3.0
    stopping = models.ensemble_model(ens, epochs=40, batch_size=64, patience=2)
    _, early = jax.jit(stopping.fit)(jax.random.PRNGKey(1), mstate, buf, hp._replace(learning_rate=0.0))
    assert float(early.epochs) == 2.0

    step = jax.jit(model.step)
    next_obs, reward, term = step(jax.random.PRNGKey(3), fitted, test.obs[:10], test.action[:10])
    assert next_obs.shape == (10, 3) and reward.shape == (10,) and term.shape == (10,)
    assert reward.dtype == jnp.float32 and term.dtype == jnp.bool_ and not term.any()
    with pytest.raises(ValueError, match="propagation"):
        models.ensemble_model(ens, propagation="ts2")


def test_planner_model_fn_over_particles_matches_the_step():
    ens = models.make_ensemble(4, 2, 4, 3, (16,), learn_reward=True)
    mstate = _scrambled_state(ens)
    model = models.ensemble_model(ens, propagation="tsinf", sample=True)
    model_fn = models.as_planner_model_fn(model)
    obs = jax.random.normal(jax.random.PRNGKey(0), (5, 4))
    action = jnp.array([0.5, -0.2])
    grouped = model_fn.over_particles(jax.random.PRNGKey(1), mstate, obs, action)
    direct = model.step(jax.random.PRNGKey(1), mstate, obs, jnp.broadcast_to(action, (5, 2)))
    for a, b in zip(grouped, direct):
        np.testing.assert_array_equal(a, b)
    single = model_fn(jax.random.PRNGKey(2), mstate, obs[0], action)
    assert single[0].shape == (4,) and single[1].shape == () and single[2].shape == ()


def _point_mass_data(key, steps, envs_):
    env, env_params, spec = envs.make(testing.POINT_MASS_ID)
    data = jax.jit(lambda k: envs.random_rollout(env, env_params, spec, k, steps, envs_))(key)
    return spec, jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), data)


def test_linear_model_fits_point_mass_dynamics():
    spec, data = _point_mass_data(jax.random.PRNGKey(0), 60, 8)
    _, test = _point_mass_data(jax.random.PRNGKey(1), 20, 4)
    n = data.reward.shape[0]
    # Unfilled slots hold garbage that a fit over the whole storage would learn from.
    garbage = jax.tree.map(lambda a: (100.0 * jnp.ones_like(a)).astype(a.dtype), data)
    storage = jax.tree.map(lambda a, g: jnp.concatenate([a, g[:200]]), data, garbage)
    buf = buffers.BufferState(storage, jnp.asarray(n, jnp.int32), jnp.asarray(n, jnp.int32))
    model = testing.linear_model(spec, reward_fn=testing.point_mass_reward_fn)
    hp = models.ModelHParams(learning_rate=1e-3, weight_decay=0.0, holdout_ratio=0.2)
    state = model.init(jax.random.PRNGKey(0), jax.tree.map(lambda a: a[0], data), hp)
    # Before the fit: the observation stays put.
    np.testing.assert_allclose(model.step(None, state, test.obs, test.action)[0], test.obs)
    fit = jax.jit(model.fit)
    state, info = fit(jax.random.PRNGKey(2), state, buf, hp)
    fit(jax.random.PRNGKey(3), state, buf, hp._replace(weight_decay=1e-3, holdout_ratio=0.0))
    assert fit._cache_size() == 1
    next_obs, reward, term = jax.jit(model.step)(jax.random.PRNGKey(4), state, test.obs, test.action)
    np.testing.assert_allclose(next_obs, test.next_obs, atol=1e-4)
    np.testing.assert_allclose(reward, test.reward, rtol=1e-4, atol=1e-4)
    assert term.dtype == jnp.bool_ and not term.any()
    assert np.isfinite([info.train_loss, info.holdout_mse]).all()
    _, no_holdout = fit(jax.random.PRNGKey(3), state, buf, hp._replace(holdout_ratio=0.0))
    assert np.isnan(no_holdout.holdout_mse)
    assert np.isnan(info.epochs)  # a closed-form fit takes no epochs: left at its default
    # The planner view of a user model: particles share the candidate's action.
    model_fn = models.as_planner_model_fn(model)
    particles = model_fn.over_particles(None, state, test.obs[:4], test.action[0])
    one = model_fn(None, state, test.obs[1], test.action[0])
    np.testing.assert_allclose(particles[0][1], one[0], rtol=1e-6)


# --- shared pieces: the MLP and the optimiser convention ---------------------------------


class _DreamerNet(nn.Module):
    """The actor-critic network as it was written inline before `models.MLP` took it over."""

    hidden_sizes: tuple
    out_size: int
    zero_out: bool = False

    @nn.compact
    def __call__(self, x):
        for width in self.hidden_sizes:
            x = nn.Dense(width, use_bias=False, param_dtype=jnp.float32)(x)
            x = nn.silu(nn.LayerNorm(param_dtype=jnp.float32)(x))
        init = nn.initializers.zeros if self.zero_out else nn.linear.default_kernel_init
        return nn.Dense(self.out_size, kernel_init=init, param_dtype=jnp.float32)(x)


@pytest.mark.parametrize("zero_out", [False, True])
def test_mlp_layer_norm_matches_the_inline_network(zero_out):
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 6))
    ref = _DreamerNet((16, 8), 3, zero_out)
    mlp = models.MLP((16, 8), 3, layer_norm=True,
                     output_kernel_init=nn.initializers.zeros if zero_out else nn.linear.default_kernel_init)
    ref_params, params = ref.init(jax.random.PRNGKey(1), x), mlp.init(jax.random.PRNGKey(1), x)
    assert jax.tree.structure(ref_params) == jax.tree.structure(params)
    jax.tree.map(np.testing.assert_array_equal, ref_params, params)
    np.testing.assert_array_equal(ref.apply(params, x), mlp.apply(params, x))
    assert "bias" not in params["params"]["Dense_0"]


def test_optimizer_step_takes_the_rate_it_is_given():
    params = {"w": jnp.array([1.0, -2.0])}
    grads = {"w": jnp.array([0.5, 0.5])}
    opt = models.adam(1e-3, weight_decay=0.0)
    state = opt.init(params)
    frozen, _ = models.optimizer_step(opt, grads, state, params, learning_rate=0.0)
    np.testing.assert_array_equal(frozen["w"], params["w"])
    moved, new_state = jax.jit(lambda lr: models.optimizer_step(opt, grads, state, params, learning_rate=lr))(0.1)
    plain = optax.adam(0.1)
    updates, _ = plain.update(grads, plain.init(params), params)
    np.testing.assert_allclose(moved["w"], optax.apply_updates(params, updates)["w"], rtol=1e-6)
    assert new_state.hyperparams["learning_rate"].dtype == jnp.float32
    with pytest.raises(KeyError, match="max_grad_norm"):
        models.set_hyperparams(state, max_grad_norm=1.0)


def test_bfloat16_products_and_relu_keep_float32_outputs():
    """compute_dtype="bfloat16" runs the products in bf16 but returns float32 within bf16 accuracy."""
    kw = dict(learn_reward=True)
    f32 = models.make_ensemble(3, 1, 2, 2, (64, 64), **kw)
    bf16 = models.make_ensemble(3, 1, 2, 2, (64, 64), compute_dtype="bfloat16", **kw)
    params = f32.init(jax.random.PRNGKey(0))
    assert jax.tree.structure(params) == jax.tree.structure(bf16.init(jax.random.PRNGKey(0)))
    x = jax.random.normal(jax.random.PRNGKey(1), (2, 16, 4))
    for a, b in zip(f32.apply(params, x), bf16.apply(params, x)):
        assert b.dtype == jnp.float32
        np.testing.assert_allclose(b, a, rtol=0.05, atol=0.05)
    assert not np.array_equal(f32.apply(params, x)[0], bf16.apply(params, x)[0])  # really narrower
    relu = models.make_ensemble(3, 1, 2, 2, (64, 64), activation="relu", **kw)
    assert not np.allclose(relu.apply(params, x)[0], f32.apply(params, x)[0])
    with pytest.raises(ValueError, match="Unknown activation 'gelu2'"):
        models.make_ensemble(3, 1, 2, 2, (8,), activation="gelu2")
    with pytest.raises(ValueError, match="Unknown compute_dtype 'float16'"):
        models.make_ensemble(3, 1, 2, 2, (8,), compute_dtype="float16")


def test_bfloat16_gradients_run_narrow_products_and_stay_float32():
    """All three products of a bf16 layer (forward, input and kernel gradient) take bf16
    operands, and the float32 parameters get float32 gradients close to the float32 ones."""
    net32 = models.MLP((64, 64), 3)
    net16 = models.MLP((64, 64), 3, dtype=jnp.bfloat16)
    x = jax.random.normal(jax.random.PRNGKey(0), (16, 5))
    params = net32.init(jax.random.PRNGKey(1), x)
    loss = lambda net: lambda p, x: (net.apply(p, x) ** 2).mean()  # noqa: E731
    g32 = jax.grad(loss(net32), argnums=(0, 1))(params, x)
    g16 = jax.grad(loss(net16), argnums=(0, 1))(params, x)
    for a, b in zip(jax.tree.leaves(g32), jax.tree.leaves(g16)):
        assert b.dtype == jnp.float32
        np.testing.assert_allclose(b, a, rtol=0.1, atol=0.02 * float(jnp.abs(a).max()))
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(g32), jax.tree.leaves(g16)))

    def dots(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                yield tuple(v.aval.dtype for v in eqn.invars)
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                yield from dots(sub)

    products = list(dots(jax.make_jaxpr(jax.grad(loss(net16), argnums=(0, 1)))(params, x).jaxpr))
    # 3 layers: 3 forward, 3 kernel-gradient and 3 input-gradient products.
    assert len(products) == 9
    assert all(dtypes == (jnp.bfloat16, jnp.bfloat16) for dtypes in products)


MEMBER_SHARDING_SCRIPT = r"""
import json, jax, jax.numpy as jnp, numpy as np
from jaxmbrl import buffers, envs, models
env, env_params, spec = envs.make("Pendulum-v1")
data = jax.jit(lambda k: envs.random_rollout(env, env_params, spec, k, 40, 5))(jax.random.PRNGKey(0))
data = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), data)
example = jax.tree.map(lambda a: a[0], data)
buf = buffers.add(buffers.init(200, example), data)
# 5 members over 2 devices: the member count need not divide by the devices.
ens = models.make_ensemble(spec.obs_dim, spec.action_dim, 5, 3, (32, 32), learn_reward=True)
mstate = models.init_model(ens, jax.random.PRNGKey(1), example)
out = {}
for name, sharding in (("one", None), ("two", models.member_sharding())):
    fit = jax.jit(lambda m, k, b: models.fit(ens, m, k, b, epochs=3, batch_size=32, patience=0,
                                             member_sharding=sharding))
    new, info = fit(mstate, jax.random.PRNGKey(2), buf)
    leaves = jax.tree.leaves(new.params)
    out[name] = dict(devices=sorted({len(l.sharding.device_set) for l in leaves}),
                     params=[np.asarray(l).ravel().tolist() for l in leaves],
                     mse=np.asarray(info.holdout_mse).tolist(), elites=np.asarray(new.elites).tolist())
# The same through the model protocol, as PETS, MBPO and Dyna take it.
model = models.ensemble_model(ens, epochs=3, patience=0, member_sharding=models.member_sharding())
hp = models.ModelHParams()
state, _ = jax.jit(model.fit)(jax.random.PRNGKey(2), model.init(jax.random.PRNGKey(1), example, hp), buf, hp)
out["protocol_devices"] = sorted({len(l.sharding.device_set) for l in jax.tree.leaves(state.params)})
out["count"] = jax.device_count()
print(json.dumps(out))
"""


def test_member_sharding_spreads_members_over_two_devices_and_matches_one():
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
    env = dict(os.environ, XLA_FLAGS=flags, JAX_PLATFORMS="cpu")
    env.pop("PYTEST_CURRENT_TEST", None)
    proc = subprocess.run([sys.executable, "-c", MEMBER_SHARDING_SCRIPT], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["count"] == 2
    assert out["one"]["devices"] == [1] and out["two"]["devices"] == [2]
    # The same fit up to the order of floating-point sums.
    for a, b in zip(out["one"]["params"], out["two"]["params"]):
        np.testing.assert_allclose(np.array(a), np.array(b), atol=1e-3)
    np.testing.assert_allclose(np.array(out["one"]["mse"]), np.array(out["two"]["mse"]), rtol=1e-3)
    assert out["one"]["elites"] == out["two"]["elites"]
    assert out["protocol_devices"] == [2]
