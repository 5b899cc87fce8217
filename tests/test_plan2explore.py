"""Plan2Explore in Dreamer: one-step heads beside the world model, their disagreement as
an intrinsic reward in imagination."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmbrl import models
from jaxmbrl.algorithms import dreamer
from jaxmbrl.algorithms.dreamer import _plan2explore as p2e

pytestmark = pytest.mark.xdist_group("plan2explore")


@pytest.fixture(scope="module")
def heads():
    rssm = models.make_rssm((3,), 2, discrete_actions=False, deter_size=8, stoch_size=2, classes=3, hidden_size=8,
                            mlp_layers=1)
    return rssm, p2e.make_heads(rssm, num_heads=4, hidden_size=8, layers=1)


def test_disagreement_is_zero_for_identical_heads_and_positive_for_different_ones(heads):
    rssm, h = heads
    feats = jax.random.normal(jax.random.PRNGKey(0), (5, 4, rssm.config.feature_size))  # [b, H + 1, F]
    actions = jax.random.uniform(jax.random.PRNGKey(1), (5, 3, 2), minval=-1, maxval=1)
    params = h.init(jax.random.PRNGKey(2))
    same = jax.tree.map(lambda x: jnp.broadcast_to(x[:1], x.shape), params)
    bonus_same = p2e.intrinsic_reward(h, same, feats, actions)
    bonus = p2e.intrinsic_reward(h, params, feats, actions)
    assert bonus.shape == (5, 3)
    np.testing.assert_array_equal(bonus_same, 0.0)
    assert np.all(np.asarray(bonus) > 0)


def test_heads_loss_leaves_out_pairs_that_cross_an_episode_start(heads):
    rssm, h = heads
    params = h.init(jax.random.PRNGKey(0))
    k = jax.random.split(jax.random.PRNGKey(1), 3)
    post = models.RSSMState(jax.random.normal(k[0], (2, 4, 8)),
                            jax.nn.one_hot(jax.random.randint(k[1], (2, 4, 2), 0, 3), 3))
    actions = jax.random.uniform(k[2], (2, 4, 2))
    is_first = jnp.zeros((2, 4), bool).at[:, 0].set(True).at[1, 3].set(True)
    loss = p2e.heads_loss(h, params, post, actions, is_first)
    # The pair (t=2 -> t=3) of sequence 1 crosses a start: its target (read by no other
    # pair) may change freely.
    moved = post._replace(stoch=post.stoch.at[1, 3].set(1.0 - post.stoch[1, 3]))
    np.testing.assert_allclose(p2e.heads_loss(h, params, moved, actions, is_first), loss, rtol=1e-6)
    # By hand: the mean over the 5 valid pairs of each pair's error averaged over heads.
    pred = h.apply(params, models.features(post)[:, :-1], actions[:, :-1])
    target = post.stoch[:, 1:].reshape(2, 3, -1)
    err = np.asarray(((pred - target) ** 2).mean(-1).mean(0))
    valid = np.array([[1, 1, 1], [1, 1, 0]], bool)
    np.testing.assert_allclose(loss, err[valid].mean(), rtol=1e-5)
    assert not np.isclose(loss, p2e.heads_loss(h, params, moved, actions, jnp.zeros((2, 4), bool)))


# On Pendulum, so this one Dreamer compile is also the default run's Dreamer with
# continuous actions.
def _p2e_run(coefficients):
    cfg = dreamer.Config.tiny(env_id="Pendulum-v1", exploration="plan2explore", disagreement_heads=3)
    hp = cfg.hparams()
    batch = jax.tree.map(lambda *v: jnp.stack([jnp.asarray(x, jnp.float32) for x in v]),
                         *[hp._replace(intrinsic_reward=c) for c in coefficients])
    run = jax.jit(jax.vmap(dreamer.make_train(cfg).run, in_axes=(None, 0)))
    return cfg, *run(jax.random.PRNGKey(0), batch)


def test_plan2explore_learns_its_heads_and_a_positive_coefficient_changes_the_actor():
    cfg, state, metrics = _p2e_run([0.0, 1.0])  # one program: the coefficient is traced
    actions = np.asarray(state.buffer.data.action)  # [2, C, B, 1]
    assert actions.shape[2:] == (cfg.num_envs, 1)
    assert (np.abs(actions) <= 2.0).all() and np.isfinite(metrics.actor_loss[:, 1:]).all()
    learned = slice(cfg.warmup_iterations, None)
    for lane in range(2):
        assert np.all(np.asarray(metrics.model_disagreement[lane, learned]) > 0)
        assert np.all(np.isfinite(metrics.disagreement_loss[lane, learned]))
        assert np.isnan(metrics.model_disagreement[lane, :cfg.warmup_iterations]).all()
    # The actor maximises the bonus too.
    assert not np.array_equal(metrics.actor_loss[1], metrics.actor_loss[0])


@pytest.mark.slow
def test_a_zero_coefficient_gives_plain_dreamer():
    """With intrinsic_reward 0 the heads learn but change nothing: plain Dreamer's metrics
    (up to the float rounding of a vmapped program against an unbatched one)."""
    plain_cfg = dreamer.Config.tiny(env_id="Pendulum-v1")
    _, plain = jax.jit(dreamer.make_train(plain_cfg).run)(jax.random.PRNGKey(0), plain_cfg.hparams())
    _, _, metrics = _p2e_run([0.0])
    for name in ("eval_return", "model_loss", "actor_loss", "critic_loss", "imagined_return"):
        np.testing.assert_allclose(getattr(metrics, name)[0], getattr(plain, name), rtol=1e-4, err_msg=name)
    assert np.isnan(plain.model_disagreement).all() and np.isnan(plain.disagreement_loss).all()


def test_plan2explore_refusals():
    with pytest.raises(ValueError, match="needs controller='actor'"):
        dreamer.make_train(dreamer.Config.tiny(exploration="plan2explore", controller="cem"))
    with pytest.raises(ValueError, match="exploration='novelty' is unknown"):
        dreamer.make_train(dreamer.Config.tiny(exploration="novelty"))
    cfg = dreamer.Config.tiny()
    with pytest.raises(ValueError, match="intrinsic_reward=0.5 is only used with exploration='plan2explore'"):
        dreamer.make_train(cfg).init(jax.random.PRNGKey(0), cfg.hparams()._replace(intrinsic_reward=0.5))
