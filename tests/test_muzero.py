"""MuZero: n-step value targets by hand, two-hot heads, one compiled vmapped run, the CLI."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmbrl import cli, models

pytest.importorskip("mctx", reason="MuZero searches with the mctx extra: pip install 'jaxmbrl[mctx]'")

from jaxmbrl.algorithms import muzero  # noqa: E402


def _window(terminated=(), truncated=()):
    w = 5  # K = 2 unroll steps, n = 2 TD steps: K + n + 1 records
    flags = lambda at: jnp.asarray([i in at for i in range(w)])  # noqa: E731
    return muzero.Step(obs=jnp.zeros((w, 1)), action=jnp.zeros((w,), jnp.int32), reward=jnp.ones((w,)),
                       terminated=flags(terminated), truncated=flags(truncated),
                       policy=jnp.tile(jnp.asarray([[0.25, 0.75]]), (w, 1)), value=jnp.zeros((w,)))


VALUES = jnp.asarray([10.0, 20.0, 30.0, 40.0, 50.0])


def test_n_step_targets_bootstrap_from_the_target_value_n_steps_on():
    t = muzero.value_targets(_window(), VALUES, 0.5, 2, 2)
    # z_k = r_k + 0.5 r_{k+1} + 0.25 v_{k+2}
    np.testing.assert_allclose(t.value, [1.5 + 0.25 * 30, 1.5 + 0.25 * 40, 1.5 + 0.25 * 50])
    np.testing.assert_allclose(t.reward, [0.0, 1.0, 1.0])
    np.testing.assert_allclose(t.in_episode, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(t.policy, np.tile([[0.25, 0.75]], (3, 1)))


def test_a_termination_stops_the_sum_and_later_steps_are_absorbing():
    t = muzero.value_targets(_window(terminated=(1,)), VALUES, 0.5, 2, 2)
    # The episode ends after r_1: z_0 = 1 + 0.5, z_1 = 1, and step 2 lies past the end.
    np.testing.assert_allclose(t.value, [1.5, 1.0, 0.0])
    np.testing.assert_allclose(t.in_episode, [1.0, 1.0, 0.0])
    np.testing.assert_allclose(t.reward, [0.0, 1.0, 1.0])  # r_0, r_1 are both inside it


def test_a_truncation_bootstraps_from_its_own_state():
    t = muzero.value_targets(_window(truncated=(1,)), VALUES, 0.5, 2, 2)
    # Cut after r_1: the value of record 1 (20) stands in for its unstored successor's.
    np.testing.assert_allclose(t.value, [1.5 + 0.25 * 20, 1.0 + 0.5 * 20, 0.0])
    np.testing.assert_allclose(t.in_episode, [1.0, 1.0, 0.0])


def test_two_hot_round_trips_through_the_categorical_head():
    x = jnp.asarray([-300.0, -2.5, -0.01, 0.0, 0.3, 1.0, 7.0, 475.0])
    weights = models.two_hot(x, 101)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    assert int((weights > 0).sum(-1).max()) <= 2
    decoded = models.from_logits(jnp.log(weights + 1e-30), 101)
    np.testing.assert_allclose(decoded, x, rtol=1e-4, atol=1e-5)
    # The loss is lowest at the target's own two-hot logits; scalar heads regress symlog.
    assert float(models.head_loss(jnp.log(weights + 1e-30), x, 101).max()) < 0.7
    np.testing.assert_allclose(models.head_loss(models.symlog(x)[:, None], x, 0), 0.0, atol=1e-6)


# The module fixture below is built once: `make test` (--dist loadgroup) keeps this
# file's tests on one worker.
pytestmark = pytest.mark.xdist_group("muzero")


@pytest.fixture(scope="module")
def tiny_runs(run_by_steps):
    cfg = muzero.Config.tiny()
    train = muzero.make_train(cfg)
    return cfg, train, run_by_steps(train, cfg)


def test_tiny_run_vmapped_over_seeds_differs_by_seed_and_repeats_exactly(tiny_runs, run_by_steps):
    cfg, train, (_, state, metrics, _) = tiny_runs
    assert metrics.iteration.shape == (2, cfg.num_iterations)
    np.testing.assert_array_equal(metrics.env_steps[0], [32, 64, 96])
    learned = np.asarray(metrics.loss[:, cfg.warmup_iterations:])
    assert np.isfinite(learned).all() and np.isnan(np.asarray(metrics.loss[:, 0])).all()
    assert np.isfinite(np.asarray(metrics.eval_return[:, 1:])).all()
    assert not np.allclose(learned[0], learned[1])
    again = run_by_steps(train, cfg)[2]
    for a, b in zip(jax.tree.leaves(metrics), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)
    # The replay holds the searches' policies: distributions over the two actions.
    policies = np.asarray(state.buffer.data.policy)[0, cfg.steps_per_iteration:state.buffer.size[0]]
    np.testing.assert_allclose(policies.sum(-1), 1.0, rtol=1e-5)


def test_step_compiles_once(tiny_runs):
    cfg, _, (first, state, metrics, step) = tiny_runs
    assert cfg.num_iterations - cfg.warmup_iterations >= 2  # the fixture called it at least twice
    assert step._cache_size() == 1
    np.testing.assert_array_equal(np.diff(metrics.iteration[0]), 1)


def test_continuous_actions_are_refused_in_one_line():
    with pytest.raises(ValueError, match="Pendulum-v1 is continuous") as err:
        muzero.make_train(muzero.Config.tiny(env_id="Pendulum-v1"))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="selection"):
        muzero.make_train(muzero.Config.tiny(selection="ucb"))


# The default run trains the module fixture's config (its programs come from the cache);
# PUCT selection with scalar values is a program of its own, kept for the slow run.
@pytest.mark.parametrize("sets", [[], pytest.param(["--set", "selection=puct", "value_bins=0"], marks=pytest.mark.slow)])
def test_cli_trains_muzero_and_writes_the_run_folder(tiny_runs, sets, tmp_path, capsys):
    out = str(tmp_path / "mz")
    argv = ["train", "muzero", "--env", "CartPole-v1", "--preset", "tiny", "--seeds", "2", "--no-progress", *sets,
            "--out", out]
    assert cli.main(argv) == 0
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert len(rows) == 2 * 3 and {r["seed"] for r in rows} == {0, 1}
    assert all(np.isfinite(r["loss"]) for r in rows if r["iteration"] >= 1)
    assert json.load(open(os.path.join(out, "summary.json")))["status"] == "completed"
    # Its latent model is diagnosed on rewards (it predicts no observations).
    assert cli.main(["diagnose", out, "--horizon", "3"]) == 0
    errors = json.load(open(os.path.join(out, "model_error.json")))["mse"]
    assert len(errors) == 3 and all(np.isfinite(errors)) and all(e >= 0 for e in errors)
    assert cli.main(["train", "muzero", "--env", "Pendulum-v1", "--preset", "tiny", "--out", str(tmp_path / "p")]) == 2
    assert "continuous" in capsys.readouterr().err
