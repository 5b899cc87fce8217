"""Exploration from model uncertainty (issue 16): disagreement, UCB returns, optimistic
PETS planning and MBPO's disagreement bonus."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmbrl import envs, exploration, models, planning, testing
from jaxmbrl.algorithms import mbpo, pets


# --- the math -----------------------------------------------------------------------------


def test_disagreement_is_zero_for_identical_members_and_hand_computed_otherwise():
    same = jnp.broadcast_to(jnp.array([[0.3, -1.0], [2.0, 5.0]]), (4, 2, 2))  # [E=4, N=2, D=2]
    np.testing.assert_array_equal(exploration.disagreement(same), [0.0, 0.0])
    # Row 0: members (0, 2) and (2, 0): variance 1 in each dim -> 1. Row 1: dim 0 is
    # (1, 3) (variance 1), dim 1 agrees (0) -> 0.5.
    means = jnp.array([[[0.0, 2.0], [1.0, 4.0]], [[2.0, 0.0], [3.0, 4.0]]])
    np.testing.assert_allclose(exploration.disagreement(means), [1.0, 0.5], rtol=1e-6)
    # Three members 0, 1, 2 of one output: population variance 2/3; twice the spread, 4x.
    three = jnp.array([[0.0], [1.0], [2.0]])
    np.testing.assert_allclose(exploration.disagreement(three), 2.0 / 3.0, rtol=1e-6)
    np.testing.assert_allclose(exploration.disagreement(2.0 * three), 8.0 / 3.0, rtol=1e-6)


def test_ucb_return_beta_zero_is_the_mean_and_hand_computed_beta():
    returns = jnp.array([[1.0, 10.0], [3.0, 10.0]])  # [E=2, 2 candidates]
    np.testing.assert_array_equal(exploration.ucb_return(returns, 0.0), returns.mean(0))
    # Candidate 0: mean 2, std 1; candidate 1: members agree (std 0).
    np.testing.assert_allclose(exploration.ucb_return(returns, 1.5), [3.5, 10.0])
    np.testing.assert_allclose(exploration.ucb_return(returns, -1.0), [1.0, 10.0])
    traced = jax.jit(exploration.ucb_return)(returns, jnp.asarray(2.0, jnp.float32))
    np.testing.assert_allclose(traced, [4.0, 10.0])


def test_linear_decay_reaches_its_end_exactly_and_constant_without_steps():
    schedule = jax.jit(lambda a, b, t: exploration.linear_decay(a, b, 100)(t))
    values = [float(schedule(0.4, 0.0, t)) for t in (0, 25, 100, 1000)]
    np.testing.assert_allclose(values, [0.4, 0.3, 0.0, 0.0], atol=1e-7)
    assert values[2] == 0.0 and values[3] == 0.0
    assert float(exploration.linear_decay(0.4, 0.0, 0)(10_000)) == pytest.approx(0.4)


# --- optimistic planning -------------------------------------------------------------------


class _SplitModel:
    """Particles of member 0 gain +|a| per step and those of member 1 -|a| (+ 1 each), so
    every candidate has the same mean return (H) and a spread that grows with |a|.
    Particle p belongs to member p * K // P, K = 2, as TSinf lays them out."""

    def __call__(self, key, params, obs, action):
        return obs, jnp.ones((), jnp.float32), jnp.zeros((), jnp.bool_)

    def over_particles(self, key, params, obs, action):
        p = obs.shape[0]
        sign = jnp.where(jnp.arange(p) * 2 // p == 0, 1.0, -1.0)
        return obs, 1.0 + sign * jnp.abs(action).sum(), jnp.zeros((p,), jnp.bool_)


class _SplitPopulation(_SplitModel):
    def over_population(self, key, params, obs, action):
        p, n = obs.shape[:2]
        sign = jnp.where(jnp.arange(p) * 2 // p == 0, 1.0, -1.0)[:, None]
        return obs, 1.0 + sign * jnp.abs(action).sum(-1)[None], jnp.zeros((p, n), jnp.bool_)


@pytest.mark.parametrize("model", [_SplitModel(), _SplitPopulation()], ids=["per_candidate", "population"])
def test_optimism_prefers_the_candidate_members_disagree_on(model):
    fn = planning.optimistic(model, num_members=2)
    obs = jnp.zeros((1,), jnp.float32)
    h = 3
    # Candidate 0 never moves (members agree), candidate 1 moves by 0.5 per step.
    candidates = jnp.stack([jnp.zeros((h, 1)), jnp.full((h, 1), 0.5)])
    score = jax.jit(lambda opt: planning.evaluate_candidates(
        fn, planning.OptimisticParams(None, opt), jax.random.PRNGKey(0), obs, candidates, 1.0, 4))
    # Member returns of candidate 1: 3 * 1.5 and 3 * 0.5: mean 3, std 1.5.
    np.testing.assert_allclose(score(0.0), [3.0, 3.0])
    np.testing.assert_allclose(score(1.0), [3.0, 4.5])
    np.testing.assert_allclose(score(-2.0), [3.0, 0.0])

    spec = envs.EnvSpec(env_id="toy", obs_shape=(1,), action_dim=1, discrete=False, num_actions=0,
                        low=np.array([-1.0], np.float32), high=np.array([1.0], np.float32), max_steps=10)
    planner = planning.random_shooting(fn, spec, horizon=h, num_samples=64, num_particles=4)
    plan = jax.jit(lambda opt: planner.plan(jax.random.PRNGKey(1), planner.init(),
                                            planning.OptimisticParams(None, opt), obs)[2].plan)
    # Optimism picks the widest moves, pessimism the smallest.
    assert float(jnp.abs(plan(1.0)).mean()) > 0.6
    assert float(jnp.abs(plan(-1.0)).mean()) < 0.4


def test_optimistic_model_fn_refuses_particles_that_do_not_split_over_members():
    fn = planning.optimistic(_SplitPopulation(), num_members=2)
    with pytest.raises(ValueError, match="multiple of the 2 ensemble members"):
        planning.evaluate_candidates(fn, planning.OptimisticParams(None, 1.0), jax.random.PRNGKey(0),
                                     jnp.zeros((1,)), jnp.zeros((2, 3, 1)), 1.0, 3)


# Its two module fixtures are built once: `make test` (--dist loadgroup) keeps this file's
# tests on one worker (without the mark each worker built `bonus_run`, ~15 s).
pytestmark = pytest.mark.xdist_group("exploration")


@pytest.fixture(scope="module")
def fitted_pets():
    cfg = pets.Config.tiny(num_iterations=2)
    train = pets.make_train(cfg)
    state = jax.jit(train.init)(jax.random.PRNGKey(0), cfg.hparams())
    return cfg, train, state


def test_optimism_zero_gives_exactly_the_plain_plan(fitted_pets):
    cfg, train, state = fitted_pets
    plain = models.as_planner_model_fn(train.model)
    kwargs = dict(horizon=cfg.planner_horizon, num_samples=cfg.planner_samples, num_elites=cfg.planner_elites,
                  num_iters=cfg.planner_iterations, num_particles=cfg.planner_particles)
    base = planning.cem(plain, train.spec, **kwargs)
    opt = planning.cem(planning.optimistic(plain, cfg.num_model_elites), train.spec, **kwargs)
    key, obs = jax.random.PRNGKey(4), state.obs[0]
    a0, s0, i0 = jax.jit(base.plan)(key, base.init(), state.model, obs)
    params = planning.OptimisticParams(state.model, jnp.zeros((), jnp.float32))
    a1, s1, i1 = jax.jit(opt.plan)(key, opt.init(), params, obs)
    jax.tree.map(np.testing.assert_array_equal, (a0, s0, i0), (a1, s1, i1))
    # A nonzero optimism ranks the same samples differently.
    _, _, i2 = jax.jit(opt.plan)(key, opt.init(), params._replace(optimism=jnp.asarray(3.0)), obs)
    assert not np.array_equal(i0.plan, i2.plan)


def test_pets_runs_optimistic_under_vmap_and_refuses_where_it_cannot(fitted_pets):
    cfg, train, state = fitted_pets
    step = jax.jit(jax.vmap(train.step))
    batched = jax.tree.map(lambda x: jnp.stack([x, x]), state)
    hp = batched.hparams._replace(optimism=jnp.array([0.0, 2.0], jnp.float32))
    _, metrics = step(batched._replace(hparams=hp))
    # Same key and model, different ranking: the optimistic seed plans another episode.
    assert np.isfinite(metrics.planned_return).all()
    assert metrics.step_reward[0] != metrics.step_reward[1]

    cfg.validate_hparams(cfg.hparams()._replace(optimism=-1.0))  # pessimism is fine
    ts1 = pets.Config.tiny(propagation="ts1")
    with pytest.raises(ValueError, match="optimism != 0 needs propagation='tsinf'"):
        ts1.validate_hparams(ts1.hparams()._replace(optimism=1.0))
    odd = pets.Config.tiny(planner_particles=3)
    with pytest.raises(ValueError, match="planner_particles=3 to be a multiple of num_model_elites=2"):
        odd.validate_hparams(odd.hparams()._replace(optimism=1.0))
    user = pets.make_train(cfg, model=testing.linear_model(train.spec))
    with pytest.raises(ValueError, match="needs the default ensemble"):
        user.init(jax.random.PRNGKey(0), cfg.hparams()._replace(optimism=1.0))


# --- MBPO's disagreement bonus ---------------------------------------------------------------


def test_member_means_agree_for_identical_members():
    ens = models.make_ensemble((3,), 1, num_members=3, num_elites=2, hidden_sizes=(8,), learn_reward=True)
    example = envs.example_transition(envs.EnvSpec("toy", (3,), 1, False, 0, np.array([-1.0]), np.array([1.0]), 5),
                                      jnp.zeros((3,)))
    mstate = models.init_model(ens, jax.random.PRNGKey(0), example)
    obs, act = jax.random.normal(jax.random.PRNGKey(1), (5, 3)), jnp.ones((5, 1))
    means = models.member_means(ens, mstate, obs, act)
    assert means.shape == (2, 5, 3) and means.dtype == jnp.float32
    assert (exploration.disagreement(means) > 0).all()
    same = mstate._replace(params=jax.tree.map(lambda p: jnp.broadcast_to(p[:1], p.shape), mstate.params))
    np.testing.assert_array_equal(exploration.disagreement(models.member_means(ens, same, obs, act)), 0.0)


@pytest.fixture(scope="module")
def bonus_run():
    # One compiled program, run twice (the coefficient is traced): 0, then 0.5.
    cfg = mbpo.Config.tiny(num_iterations=2, exploration="disagreement")
    train = mbpo.make_train(cfg)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    run = jax.jit(jax.vmap(train.run))
    _, zero = run(keys, _batch(cfg.hparams()))
    state, bonus = run(keys, _batch(cfg.hparams()._replace(intrinsic_reward=0.5)))
    return cfg, train, zero, state, bonus


def _batch(hp, n=2):
    return jax.tree.map(lambda x: jnp.full((n,), x, jnp.float32), hp)


def test_mbpo_bonus_runs_under_jit_vmap_and_changes_learning(bonus_run):
    _, _, zero, _, bonus = bonus_run
    assert np.isnan(zero.model_disagreement[:, 0]).all() and (zero.model_disagreement[:, 1:] > 0).all()
    # A positive coefficient changes the imagined rewards, hence the learning.
    assert not np.array_equal(zero.critic_loss[:, 1:], bonus.critic_loss[:, 1:])
    assert np.isfinite(bonus.eval_return[:, 1:]).all() and (bonus.model_disagreement[:, 1:] > 0).all()


@pytest.mark.slow
def test_mbpo_bonus_of_zero_gives_the_default_metrics(bonus_run):
    cfg, _, zero, _, _ = bonus_run
    plain_cfg = dataclasses.replace(cfg, exploration="none")
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    _, plain = jax.jit(jax.vmap(mbpo.make_train(plain_cfg).run))(keys, _batch(plain_cfg.hparams()))
    for field in mbpo.Metrics._fields:
        if field != "model_disagreement":
            np.testing.assert_array_equal(getattr(plain, field), getattr(zero, field), err_msg=field)
    assert np.isnan(plain.model_disagreement).all()


def test_imagined_rewards_include_a_nonnegative_bonus(bonus_run):
    cfg, train, _, state, _ = bonus_run
    mstate = jax.tree.map(lambda a: a[0], state.model)
    agent = jax.tree.map(lambda a: a[0], state.agent)
    starts = state.buffer.data.obs[0, :16]
    step = lambda k, o, a: train.model.step(k, mstate, o, a)  # noqa: E731
    policy = lambda k, o: jax.vmap(train.agent.act, in_axes=(0, None, 0, None))(  # noqa: E731
        jax.random.split(k, o.shape[0]), agent, o, False)
    key, k, coef = jax.random.PRNGKey(5), jnp.asarray(2, jnp.int32), jnp.asarray(0.5, jnp.float32)
    plain, valid = jax.jit(lambda: mbpo.branched_rollout(key, step, policy, starts, k, 2))()
    boosted, valid2, bonus = jax.jit(lambda: mbpo.bonus_rollout(
        key, step, lambda o, a: train.model.member_means(mstate, o, a), coef, policy, starts, k, 2))()
    np.testing.assert_array_equal(valid, valid2)
    np.testing.assert_array_equal(plain.next_obs, boosted.next_obs)
    assert (bonus > 0).all()
    assert (boosted.reward >= plain.reward).all()
    np.testing.assert_allclose(boosted.reward - plain.reward, 0.5 * bonus, rtol=1e-5, atol=1e-6)
    # A zero coefficient gives the plain rollout bit for bit (what the default keeps).
    same, _, _ = jax.jit(lambda: mbpo.bonus_rollout(
        key, step, lambda o, a: train.model.member_means(mstate, o, a), jnp.zeros((), jnp.float32), policy,
        starts, k, 2))()
    jax.tree.map(np.testing.assert_array_equal, plain, same)


def test_mbpo_bonus_refusals():
    cfg = mbpo.Config.tiny()
    with pytest.raises(ValueError, match="intrinsic_reward=0.1 is only used with exploration='disagreement'"):
        cfg.validate_hparams(cfg.hparams()._replace(intrinsic_reward=0.1))
    with pytest.raises(ValueError, match="exploration='greedy' is unknown"):
        mbpo.make_train(dataclasses.replace(cfg, exploration="greedy"))
    spec = envs.make("Pendulum-v1")[2]
    with pytest.raises(ValueError, match="needs a model with member_means"):
        mbpo.make_train(mbpo.Config.tiny(exploration="disagreement"), model=testing.linear_model(spec))
