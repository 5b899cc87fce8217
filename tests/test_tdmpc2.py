"""TD-MPC2: the consistency loss by hand, SimNorm, one compiled vmapped run, bad input.

The two-hot heads it shares with MuZero are checked in test_muzero.py; MPPI over elites
(a terminal value decides a horizon-1 plan, the oracle solves Pendulum, jit and vmap) in
test_planning.py.
"""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmbrl import cli, models
from jaxmbrl.algorithms import tdmpc2


def test_consistency_loss_on_a_hand_computed_window():
    predicted = jnp.asarray([[0.0, 0.0], [1.0, 1.0]])
    target = jnp.asarray([[0.0, 1.0], [1.0, 3.0]])
    weights = jnp.asarray([1.0, 0.5])  # rho = 0.5
    # Step 0: mean((0, 1)^2) = 0.5; step 1: mean((0, 2)^2) = 2, weighed 0.5; over H = 2.
    np.testing.assert_allclose(models.consistency_loss(predicted, target, weights, jnp.ones(2)), (0.5 + 1.0) / 2)
    # A step past the episode's end does not count.
    np.testing.assert_allclose(models.consistency_loss(predicted, target, weights, jnp.asarray([1.0, 0.0])), 0.25)


def test_simnorm_puts_every_group_on_a_simplex():
    z = models.simnorm(jax.random.normal(jax.random.PRNGKey(0), (3, 16)) * 5.0, 8)
    groups = np.asarray(z).reshape(3, 2, 8)
    np.testing.assert_allclose(groups.sum(-1), 1.0, rtol=1e-6)
    assert (groups >= 0).all()


# The module fixture below is built once: `make test` (--dist loadgroup) keeps this
# file's tests on one worker.
pytestmark = pytest.mark.xdist_group("tdmpc2")


@pytest.fixture(scope="module")
def tiny_runs(run_by_steps):
    cfg = tdmpc2.Config.tiny()
    train = tdmpc2.make_train(cfg)
    return cfg, train, run_by_steps(train, cfg)


def test_tiny_run_vmapped_over_seeds_differs_by_seed_and_repeats_exactly(tiny_runs, run_by_steps):
    cfg, train, (_, state, metrics, _) = tiny_runs
    assert metrics.iteration.shape == (2, cfg.num_iterations)
    learned = np.asarray(metrics.model_loss[:, cfg.warmup_iterations:])
    assert np.isfinite(learned).all() and np.isnan(np.asarray(metrics.model_loss[:, 0])).all()
    assert np.isfinite(np.asarray(metrics.eval_return[:, 1:])).all()
    assert np.isfinite(np.asarray(metrics.planned_return[:, 1:])).all()
    assert not np.allclose(learned[0], learned[1])
    again = run_by_steps(train, cfg)[2]
    for a, b in zip(jax.tree.leaves(metrics), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)
    # Actions stay in Pendulum's torque range with the exploration noise added.
    actions = np.asarray(state.buffer.data.action)
    assert (np.abs(actions) <= 2.0).all() and actions.shape[-1] == 1


def test_step_compiles_once_and_the_target_q_moves_slowly(tiny_runs):
    cfg, _, (first, state, metrics, step) = tiny_runs
    assert cfg.num_iterations - cfg.warmup_iterations >= 2  # the fixture called it at least twice
    assert step._cache_size() == 1
    np.testing.assert_array_equal(np.diff(metrics.iteration[0]), 1)
    # Learning starts after the warm-up, so `first` holds the heads as initialised.
    before = jax.tree.leaves(first.learner.target_q)[0][0]
    online = jax.tree.leaves(state.learner.params["params"]["q_heads"])[0][0]
    target = jax.tree.leaves(state.learner.target_q)[0][0]
    # Polyak with tau 0.01: the target moved, but far less than the online heads.
    assert 0 < float(jnp.abs(target - before).max()) < float(jnp.abs(online - before).max())


def test_discrete_actions_and_images_are_refused_in_one_line():
    with pytest.raises(ValueError, match="CartPole-v1 is discrete") as err:
        tdmpc2.make_train(tdmpc2.Config.tiny(env_id="CartPole-v1"))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="planner_proposals"):
        tdmpc2.make_train(tdmpc2.Config.tiny(planner_proposals=15))


def test_cli_trains_tdmpc2_and_writes_the_run_folder(tiny_runs, tmp_path, capsys):
    # The module fixture's config and seeds: the CLI finds its programs in the cache.
    out = str(tmp_path / "td")
    assert cli.main(["train", "tdmpc2", "--preset", "tiny", "--seeds", "2", "--no-progress", "--out", out]) == 0
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert len(rows) == 2 * 3 and all(np.isfinite(r["model_loss"]) for r in rows if r["iteration"] >= 1)
    assert json.load(open(os.path.join(out, "summary.json")))["status"] == "completed"
    assert cli.main(["train", "tdmpc2", "--env", "CartPole-v1", "--preset", "tiny", "--out", str(tmp_path / "c")]) == 2
    assert "discrete" in capsys.readouterr().err
