"""Dreamer: sequence replay, the compiled loop, latent planning, bad configs, the runner."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmbrl import buffers, envs, run
from jaxmbrl.algorithms import dreamer


# The module fixture below is built once: `make test` (--dist loadgroup) keeps this
# file's tests on one worker.
pytestmark = pytest.mark.xdist_group("dreamer")


@pytest.fixture(scope="module")
def tiny(run_by_steps):
    """Config.tiny(), run for 2 seeds by one compiled vmapped step (shared by the tests
    below): (cfg, train, (first state, final state, Metrics [2, 3], step))."""
    cfg = dreamer.Config.tiny()
    train = dreamer.make_train(cfg)
    return cfg, train, run_by_steps(train, cfg)


def test_sequences_come_from_one_env_in_order_and_start_fresh():
    example = dreamer.Step(jnp.zeros((2, 1)), jnp.zeros((2,), jnp.int32), jnp.zeros((2,)), jnp.zeros((2,), bool),
                           jnp.zeros((2,), bool))
    buf = buffers.init(10, example)
    for t in range(12):  # wraps: holds t = 2 .. 11
        obs = jnp.array([[t], [100 + t]], jnp.float32)
        buf = buffers.add(buf, jax.tree.map(lambda a: a[None], example._replace(obs=obs)))
    batch = dreamer.sample_sequences(jax.random.PRNGKey(0), buf, 200, 4)
    obs = np.asarray(batch.obs[..., 0])
    assert obs.shape == (200, 4)
    np.testing.assert_array_equal(np.diff(obs, axis=1), 1.0)  # consecutive steps of one env
    assert set(np.unique(obs // 100)) == {0.0, 1.0}  # both envs are drawn
    assert obs[obs < 100].min() >= 2  # nothing overwritten is returned
    assert batch.is_first[:, 0].all() and not batch.is_first[:, 1:].any()


def test_tiny_runs_end_to_end_vmapped_seeds_differ_and_repeat(tiny, run_by_steps):
    cfg, train, (_, state, metrics, _) = tiny
    again = run_by_steps(train, cfg)[2]
    jax.tree.map(np.testing.assert_array_equal, metrics, again)
    np.testing.assert_array_equal(metrics.iteration, [[0, 1, 2]] * 2)
    np.testing.assert_array_equal(metrics.env_steps, [[32, 64, 96]] * 2)
    assert np.isnan(metrics.eval_return[:, 0]).all() and np.isfinite(metrics.eval_return[:, 1:]).all()
    for name in ("model_loss", "kl", "actor_loss", "critic_loss", "imagined_return"):
        assert np.isfinite(getattr(metrics, name)[:, 1:]).all(), name
    assert (metrics.kl[:, 1:] > 0).all()
    assert int(state.buffer.size[0]) == 48  # 3 iterations x 16 vectorised steps
    assert not np.allclose(metrics.model_loss[0, 1:], metrics.model_loss[1, 1:])
    # Each stored step is marked `is_first` exactly where an episode began.
    first = np.asarray(state.buffer.data.is_first[0])  # [C, B]
    assert first[0].all()
    ended = np.asarray(state.buffer.data.terminated[0])
    assert (first[1:][ended[:-1]]).all()


def test_step_compiles_once(tiny):
    cfg, _, (_, _, metrics, step) = tiny
    assert cfg.num_iterations - cfg.warmup_iterations >= 2  # the fixture called it at least twice
    assert step._cache_size() == 1
    np.testing.assert_array_equal(metrics.iteration[0], [0, 1, 2])


# Latent planning in the default run is mppi on Pendulum, in tests/test_contract.py's sweep;
# each discrete case compiles a Dreamer of its own (~50 s on a 2-core Zen 3), so both are
# `slow` (tree search itself runs by default in tests/test_tree_search.py and MuZero).
@pytest.mark.parametrize("env_id,controller", [pytest.param("CartPole-v1", "discrete_cem", marks=pytest.mark.slow),
                                               pytest.param("CartPole-v1", "mcts", marks=pytest.mark.slow)])
def test_latent_planning_controller_runs(env_id, controller):
    if controller == "mcts":
        pytest.importorskip("mctx", reason="tree search needs the mctx extra: pip install 'jaxmbrl[mctx]'")
    cfg = dreamer.Config.tiny(env_id=env_id, controller=controller, num_iterations=2, steps_per_iteration=8)
    train = dreamer.make_train(cfg)
    state, metrics = jax.jit(train.run)(jax.random.PRNGKey(0), cfg.hparams())
    assert np.isfinite(metrics.eval_return[1]) and np.isfinite(metrics.model_loss[1])
    assert np.isnan(metrics.actor_loss[1])  # the actor is not trained when a planner acts
    # A sampling planner keeps its [H, ...] solution; a tree search its root's action weights.
    kept = 1 if controller == "mcts" else cfg.planner_horizon
    assert state.planner.mean.shape[:2] == (cfg.num_envs, kept)


# Continuous actions with the actor: tests/test_plan2explore.py's run is on Pendulum.


# A whole Dreamer compile for the encoder swap; the CNN itself is tested in
# tests/test_rssm.py (shapes, MinAtar-sized observations), so this one is `slow`.
@pytest.mark.slow
def test_minatar_with_the_cnn_encoder_runs():
    cfg = dreamer.Config.tiny(env_id="Breakout-MinAtar", num_iterations=2, steps_per_iteration=8)
    train = dreamer.make_train(cfg)
    assert train.rssm.config.uses_cnn
    _, metrics = jax.jit(train.run)(jax.random.PRNGKey(0), cfg.hparams())
    assert np.isfinite(metrics.reconstruction[1]) and np.isfinite(metrics.actor_loss[1])


def test_bad_configs_raise_at_make_train():
    with pytest.raises(ValueError, match="needs continuous actions, but CartPole-v1 is discrete"):
        dreamer.make_train(dreamer.Config.tiny(controller="cem"))
    with pytest.raises(ValueError, match="needs discrete actions"):
        dreamer.make_train(dreamer.Config.tiny(env_id="Pendulum-v1", controller="discrete_cem"))
    with pytest.raises(ValueError, match="controller='ppo' is unknown"):
        dreamer.make_train(dreamer.Config.tiny(controller="ppo"))
    with pytest.raises(ValueError, match="encoder='cnn' needs image-like"):
        dreamer.make_train(dreamer.Config.tiny(encoder="cnn"))
    with pytest.raises(ValueError, match="model_train_every=5 must divide"):
        dreamer.make_train(dreamer.Config.tiny(model_train_every=5))
    with pytest.raises(ValueError, match="fewer than one update"):
        dreamer.make_train(dreamer.Config.tiny(train_ratio=1))
    with pytest.raises(ValueError, match="seq_len"):
        dreamer.make_train(dreamer.Config.tiny(seq_len=64))
    with pytest.raises(envs.UnknownEnvError):
        dreamer.make_train(dreamer.Config.tiny(env_id="CartPole-v9"))


def test_runner_trains_dreamer_and_writes_the_run_folder(tiny, tmp_path):
    # The module fixture's config and seeds: the runner finds its programs in the cache.
    cfg = tiny[0]
    out = str(tmp_path / "dreamer")
    result = run.run("dreamer", cfg, [cfg.hparams()], out, run.RunOptions(seeds=2, progress=False))
    assert (tmp_path / "dreamer" / "metrics.jsonl").exists()
    lines = (tmp_path / "dreamer" / "metrics.jsonl").read_text().strip().splitlines()
    assert len(lines) == 2 * 3
    assert result is not None
    # The RSSM's k-step open-loop error (diagnose works for Dreamer's world model too).
    errors, png = run.diagnose(out, horizon=3)
    assert errors.shape == (3,) and np.isfinite(errors).all() and (errors >= 0).all() and os.path.exists(png)
