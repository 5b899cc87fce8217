"""The Brax adapter (`brax/<task>` ids): auto-reset, termination kept apart from the time
limit, known reward/termination checked against Brax's own, and MBPO on a Brax task.

Tests that need Brax skip with a reason without it; `make test` installs the extra. The
default suite uses Brax's "spring" backend, which compiles fastest; the known functions are
exact on the default "generalized" backend (checked for every task by the slow test), and on
spring for the tasks checked here.
"""
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmbrl import cli, envs
from jaxmbrl.envs import _make


def _flat(tr):
    return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), tr)


def _needs_brax():
    pytest.importorskip("brax", reason="Brax is an optional extra: pip install 'jaxmbrl[brax]'")


# The module fixture below is built once: `make test` (--dist loadgroup) keeps this
# file's tests on one worker.
pytestmark = pytest.mark.xdist_group("brax")


@pytest.fixture(scope="module")
def hopper():
    """Random-action hopper rollouts [T=150, B=4] under a time limit of 5 and of 1,000 steps,
    from one compiled program (the limit is a traced param)."""
    _needs_brax()
    env, params, spec = envs.make("brax/hopper", backend="spring")
    assert env.traced_obs_shape() == spec.obs_shape  # the table of sizes against Brax
    run = jax.jit(lambda p, k: envs.random_rollout(env, p, spec, k, 150, 4))
    short = run(params.replace(max_steps_in_episode=5), jax.random.PRNGKey(0))
    long = run(params, jax.random.PRNGKey(1))
    return spec, short, long


def test_spec_of_a_brax_task(hopper):
    spec, _, _ = hopper
    assert (spec.env_id, spec.obs_shape, spec.action_dim, spec.discrete, spec.max_steps) == (
        "brax/hopper", (11,), 3, False, 1000)
    assert spec.low == (-1.0,) * 3 and spec.high == (1.0,) * 3


def test_time_limit_truncates_and_keeps_the_true_successor(hopper):
    _, short, _ = hopper
    t = np.arange(150)
    np.testing.assert_array_equal(short.truncated[:, 0], (t + 1) % 5 == 0)
    assert not np.asarray(short.terminated).any()  # 5 steps are too few to fall
    ends = np.asarray(short.truncated[:-1, 0])
    # Within an episode obs follows next_obs; across its end, obs is a fresh reset while
    # next_obs is where the episode stopped.
    same = np.all(np.isclose(short.next_obs[:-1, 0], short.obs[1:, 0]), axis=-1)
    np.testing.assert_array_equal(same, ~ends)


def test_a_fallen_hopper_terminates_and_its_final_state_is_stored(hopper):
    _, _, long = hopper
    term, trunc = np.asarray(long.terminated), np.asarray(long.truncated)
    assert term.sum() >= 2 and not trunc.any()  # under 1,000 steps: every end is a fall
    fallen = np.asarray(long.next_obs)[term]
    # Brax ends an episode when the torso drops below 0.7 or tilts past 0.2 rad: the
    # stored successor shows it, the reset observation (torso at 1.25) would not.
    assert np.all((fallen[:, 0] < 0.7) | (np.abs(fallen[:, 1]) > 0.2))
    restart = np.asarray(long.obs)[1:][term[:-1]]
    assert np.all(np.abs(restart[:, 0] - 1.25) < 0.02) and np.all(np.abs(restart[:, 1]) < 0.02)
    d = jax.vmap(envs.termination_fn("brax/hopper"))(*(_flat(long)[i] for i in (0, 1, 3)))
    np.testing.assert_array_equal(d, _flat(long).terminated)


# Inverted pendulum's known functions are checked by default on MBPO's real data below and
# hopper's termination on the fixture; reacher's reward (a Brax program of its own) and the
# other tasks' on the default backend are in the slow run.
@pytest.mark.slow
def test_reacher_known_reward_matches_brax():
    _needs_brax()
    _check_known("reacher", "spring")


def _check_known(task, backend):
    env, params, spec = envs.make(f"brax/{task}", backend=backend)
    assert env.traced_obs_shape() == spec.obs_shape  # jaxmbrl's table of sizes against Brax
    flat = _flat(jax.jit(lambda k: envs.random_rollout(env, params, spec, k, 200, 4))(jax.random.PRNGKey(1)))
    env_id = f"brax/{task}"
    d = jax.vmap(envs.termination_fn(env_id))(flat.obs, flat.action, flat.next_obs)
    np.testing.assert_array_equal(d, flat.terminated)
    reward_fn = envs.known_reward(env_id)
    if reward_fn is not None:
        r = jax.vmap(reward_fn)(flat.obs, flat.action, flat.next_obs)
        np.testing.assert_allclose(r, flat.reward, atol=1e-5)
    return flat


@pytest.mark.slow
@pytest.mark.parametrize("task", ["inverted_pendulum", "inverted_double_pendulum", "reacher", "hopper",
                                  "walker2d", "ant", "halfcheetah"])
def test_known_functions_match_brax_on_the_default_backend(task):
    _needs_brax()
    flat = _check_known(task, "generalized")
    if task in ("inverted_pendulum", "inverted_double_pendulum", "hopper", "walker2d", "ant"):
        assert int(flat.terminated.sum()) > 0  # the check saw terminations


def test_learned_reward_tasks_name_the_fix():
    assert envs.known_reward("brax/hopper") is None
    assert envs.known_termination("brax/halfcheetah") is envs.never_terminates
    with pytest.raises(ValueError, match="not a function of"):
        envs.reward_fn("brax/halfcheetah")


def test_without_brax_an_id_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "brax", None)  # as if it were not installed
    monkeypatch.setattr(_make, "_MAKE_CACHE", {})
    with pytest.raises(envs.MissingExtraError, match=r"jaxmbrl\[brax\]"):
        envs.make("brax/hopper")
    out = tmp_path / "run"
    assert cli.main(["train", "mbpo", "--env", "brax/hopper", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "jaxmbrl[brax]" in err[0]
    assert not out.exists()


def test_bad_backend_is_one_line():
    _needs_brax()
    with pytest.raises(ValueError, match="unknown backend 'fast'"):
        envs.make("brax/reacher", backend="fast")


def test_tiny_mbpo_on_brax_under_jit_vmap():
    _needs_brax()
    from jaxmbrl.algorithms import mbpo

    cfg = mbpo.Config.tiny(env_id="brax/inverted_pendulum",
                           env_kwargs={"backend": "spring", "max_steps_in_episode": 20})
    train = mbpo.make_train(cfg)
    hp = jax.tree.map(lambda h: jnp.full((2,), h, jnp.float32), cfg.hparams())
    state, metrics = jax.jit(jax.vmap(train.run))(jax.random.split(jax.random.PRNGKey(0), 2), hp)
    np.testing.assert_array_equal(metrics.env_steps, [[16, 32, 48]] * 2)
    # Reward 1 per step, at most 20 steps: every evaluation return lies in [1, 20].
    ev = np.asarray(metrics.eval_return[:, 1:])
    assert np.all((ev >= 1) & (ev <= 20))
    assert np.isfinite(metrics.critic_loss[:, 1:]).all() and np.isfinite(metrics.model_train_loss[:, 1:]).all()
    data = jax.tree.map(lambda a: np.asarray(a[:, :48]), state.buffer.data)
    # Random and early policies drop the pole: the stored successors of terminal steps are
    # past 0.2 rad, never the reset that followed them.
    assert data.terminated.any()
    assert np.all(np.abs(data.next_obs[data.terminated][:, 1]) > 0.2)
    # The known reward and termination agree with Brax on every real transition.
    flat = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), data)
    args = (flat.obs, flat.action, flat.next_obs)
    np.testing.assert_array_equal(jax.vmap(envs.termination_fn("brax/inverted_pendulum"))(*args), flat.terminated)
    np.testing.assert_array_equal(jax.vmap(envs.reward_fn("brax/inverted_pendulum"))(*args), flat.reward)
    assert not np.array_equal(metrics.eval_return[0], metrics.eval_return[1])
