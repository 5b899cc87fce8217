import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmbrl.algorithms import mbpo
from jaxmbrl.types import Transition


def _toy_step(key, obs, action):
    # Counts up by one per step; terminal once the count reaches 2.
    del key
    next_obs = obs + 1.0
    return next_obs, obs[:, 0] * 10.0 + action[:, 0], next_obs[:, 0] >= 2.0


def _toy_policy(key, obs):
    del key
    return jnp.ones((obs.shape[0], 1), jnp.float32)


def test_rollouts_stop_after_predicted_termination_and_at_k():
    start = jnp.array([[0.0], [1.0], [-5.0]])
    transitions, valid = mbpo.branched_rollout(jax.random.PRNGKey(0), _toy_step, _toy_policy, start,
                                               jnp.asarray(3, jnp.int32), max_k=4)
    # Row 0 reaches 2 at step 1 (kept, terminal); row 1 at step 0; row 2 never, cut at k=3.
    expected = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 1], [0, 0, 0]], bool)
    np.testing.assert_array_equal(valid, expected)
    np.testing.assert_array_equal(transitions.terminated[:, :2], [[False, True], [True, True], [True, True], [True, True]])

    buf = mbpo.model_buffer_init(1, 12, jax.tree.map(lambda a: a[0, 0], transitions))
    buf = mbpo.model_buffer_add(buf, transitions, valid)
    assert int(buf.counts.sum()) == int(expected.sum())
    sample = mbpo.model_buffer_sample(jax.random.PRNGKey(1), buf, 2000)
    allowed = set(np.asarray(transitions.reward)[expected].round(3).tolist())
    assert set(np.asarray(sample.reward).round(3).tolist()) == allowed


def test_model_buffer_keeps_latest_batches():
    example = Transition(jnp.zeros((1,)), jnp.zeros((1,)), jnp.zeros(()), jnp.zeros((1,)),
                         jnp.zeros((), bool), jnp.zeros((), bool))
    buf = mbpo.model_buffer_init(2, 3, example)
    for r, n in ((1.0, 3), (2.0, 1), (3.0, 2)):
        batch = jax.tree.map(lambda a: jnp.broadcast_to(a, (3,) + a.shape), example)._replace(reward=jnp.full((3,), r))
        buf = mbpo.model_buffer_add(buf, batch, jnp.arange(3) < n)
    rewards = set(np.asarray(mbpo.model_buffer_sample(jax.random.PRNGKey(0), buf, 500).reward).tolist())
    assert rewards == {2.0, 3.0}
    assert int(buf.counts.sum()) == 3


def test_rollout_length_schedule():
    ks = [int(mbpo.rollout_length(jnp.asarray(e), (20, 100, 1, 5))) for e in (0, 20, 40, 60, 99, 100, 500)]
    assert ks == [1, 1, 2, 3, 4, 5, 5]


# The module fixture below is built once: `make test` (--dist loadgroup) keeps this
# file's tests on one worker.
pytestmark = pytest.mark.xdist_group("mbpo")


@pytest.fixture(scope="module")
def tiny(run_by_steps):
    """Config.tiny() run for 2 seeds by the runner's programs (shared by the tests below):
    (cfg, train, (first state, final state, Metrics [2, 3], the jitted chunk))."""
    cfg = mbpo.Config.tiny()
    train = mbpo.make_train(cfg)
    return cfg, train, run_by_steps(train, cfg)


def test_tiny_runs_vmapped_seeds_differ_and_repeat(tiny, run_by_steps):
    cfg, train, (_, state, metrics, _) = tiny
    again = run_by_steps(train, cfg)[2]
    jax.tree.map(np.testing.assert_array_equal, metrics, again)
    np.testing.assert_array_equal(metrics.iteration, [[0, 1, 2]] * 2)
    np.testing.assert_array_equal(metrics.env_steps, [[16, 32, 48]] * 2)
    assert np.isnan(metrics.eval_return[:, 0]).all() and np.isfinite(metrics.eval_return[:, 1:]).all()
    assert np.isfinite(metrics.critic_loss[:, 1:]).all()
    # Tiny's 2-epoch cap ends each refit before its patience of 5 could.
    assert np.isnan(metrics.model_fit_epochs[:, 0]).all()
    np.testing.assert_array_equal(metrics.model_fit_epochs[:, 1:], float(cfg.model_epochs))
    np.testing.assert_array_equal(metrics.rollout_length[0], [0, 1, 2])
    # 4 rollouts/step * 4 steps/block * 2 envs = 32 rollouts; k=2 with nothing terminal.
    np.testing.assert_array_equal(metrics.model_buffer_size[0], [0, 32, 64])
    assert int(state.buffer.size[0]) == 48
    assert not np.allclose(metrics.eval_return[0, 1:], metrics.eval_return[1, 1:])
    assert int(state.agent.num_updates[0]) == 2 * cfg.steps_per_iteration * cfg.policy_updates_per_step


def test_step_compiles_once(tiny):
    cfg, _, (_, _, metrics, step) = tiny
    assert cfg.num_iterations - cfg.warmup_iterations >= 2  # the fixture called it at least twice
    assert step._cache_size() == 1
    np.testing.assert_array_equal(metrics.iteration[0], [0, 1, 2])
    np.testing.assert_array_equal(metrics.env_steps[0], [16, 32, 48])


def test_schedules_move_to_their_ends_over_the_decay_steps():
    # One program (decay steps are static), six traced schedules on one key. After a
    # 1-step decay every SAC update reads the end value, so a schedule that starts
    # elsewhere trains exactly as the constant end, and differently from the constant start.
    train = mbpo.make_train(mbpo.Config.tiny(num_iterations=2, real_ratio_decay_steps=1,
                                             target_tau_decay_steps=1))
    schedules = [mbpo.HParams(real_ratio=start, real_ratio_end=end)
                 for start, end in ((0.0, 1.0), (1.0, 1.0), (0.0, 0.0))]
    schedules += [mbpo.HParams(target_tau=start, target_tau_end=end)
                  for start, end in ((0.5, 1.0), (1.0, 1.0), (0.5, 0.5))]
    hps = jax.tree.map(lambda *v: jnp.asarray(v, jnp.float32), *schedules)
    keys = jnp.broadcast_to(jax.random.key(3), (len(schedules),))
    _, metrics = jax.jit(jax.vmap(train.run))(keys, hps)
    critic_loss = np.asarray(metrics.critic_loss[:, -1])
    assert np.isfinite(critic_loss).all()
    assert critic_loss[0] == critic_loss[1]  # real ratio 0 -> 1 trains as 1 throughout
    assert critic_loss[0] != critic_loss[2]
    assert critic_loss[3] == critic_loss[4]  # target tau 0.5 -> 1 trains as 1 throughout
    assert critic_loss[3] != critic_loss[5]
    with pytest.raises(ValueError, match="real_ratio_end"):
        mbpo.Config.tiny().validate_hparams(mbpo.HParams(real_ratio_end=1.5))
    with pytest.raises(ValueError, match="target_tau_end"):
        mbpo.Config.tiny().validate_hparams(mbpo.HParams(target_tau_end=0.0))
    for field in ("real_ratio_decay_steps", "target_tau_decay_steps"):
        with pytest.raises(ValueError, match=field):
            mbpo.Config.tiny(**{field: -1}).validate()


def test_bad_configs_raise_at_make_train():
    with pytest.raises(ValueError, match="continuous actions.*CartPole-v1"):
        mbpo.make_train(mbpo.Config.tiny(env_id="CartPole-v1"))
    with pytest.raises(ValueError, match="model_train_every=3 must divide"):
        mbpo.make_train(mbpo.Config.tiny(model_train_every=3))
    with pytest.raises(ValueError, match="rollout_schedule"):
        mbpo.make_train(mbpo.Config.tiny(rollout_schedule=(1, 2, 0, 1)))
    with pytest.raises(ValueError, match="warmup_iterations"):
        mbpo.make_train(mbpo.Config.tiny(warmup_iterations=0))


def test_known_reward_replaces_the_learned_head():
    from jaxmbrl import envs, models

    cfg = mbpo.Config.tiny(env_id="MountainCarContinuous-v0", learn_reward=False)
    train = mbpo.make_train(cfg)
    example = envs.example_transition(train.spec, jnp.zeros(train.spec.obs_shape, jnp.float32))
    mstate = train.model.init(jax.random.PRNGKey(0), example, models.ModelHParams(1e-3, 0.0, 0.2))
    # The untrained ensemble's next_obs are arbitrary; the reward must be the known
    # function of them (a learned head would give something else).
    obs = jnp.array([[0.5, 0.02], [-0.5, 0.0], [0.44, 0.07]], jnp.float32)
    action = jnp.array([[0.3], [-1.0], [1.0]], jnp.float32)
    next_obs, reward, _ = train.model.step(jax.random.PRNGKey(1), mstate, obs, action)
    expected = jax.vmap(envs.reward_fn("MountainCarContinuous-v0"))(obs, action, next_obs)
    np.testing.assert_allclose(reward, expected, rtol=1e-6)


def test_known_reward_refused_where_none_is_known():
    with pytest.raises(ValueError, match="No known reward.*Reacher-misc.*learn_reward=True"):
        mbpo.make_train(mbpo.Config.tiny(env_id="Reacher-misc", learn_reward=False))
    with pytest.raises(ValueError, match="set learn_reward=False to use it"):
        mbpo.make_train(mbpo.Config.tiny(), reward_fn=lambda o, a, n: o[..., 0])


def test_target_entropy_reaches_sac_temperature():
    # A target far above the policy's entropy raises the temperature, one far below lowers
    # it; the default (None) is SAC's -A.
    assert mbpo.make_train(mbpo.Config.tiny()).agent.config.target_entropy == -1.0
    key = jax.random.PRNGKey(0)
    batch = Transition(jnp.zeros((8, 3)), jnp.zeros((8, 1)), jnp.zeros((8,)), jnp.zeros((8, 3)),
                       jnp.zeros((8,), jnp.bool_), jnp.zeros((8,), jnp.bool_))
    alphas = {}
    for target in (5.0, -50.0):
        agent = mbpo.make_train(mbpo.Config.tiny(target_entropy=target)).agent
        assert agent.config.target_entropy == target
        hp = mbpo.HParams(alpha_learning_rate=0.1).sac()
        state, _ = agent.update(agent.init(key, hp), batch, hp, key)
        alphas[target] = float(jnp.exp(state.log_alpha))
    assert alphas[5.0] > 1.0 > alphas[-50.0]
    mbpo.Config.tiny().validate_hparams(mbpo.HParams(alpha_learning_rate=0.0))  # a fixed temperature
    with pytest.raises(ValueError, match="target_entropy must be a finite number"):
        mbpo.make_train(mbpo.Config.tiny(target_entropy=float("inf")))
    assert mbpo.make_train(mbpo.Config.tiny(policy_compute_dtype="bfloat16")).agent.config.compute_dtype == "bfloat16"
    with pytest.raises(ValueError, match="policy_compute_dtype"):
        mbpo.make_train(mbpo.Config.tiny(policy_compute_dtype="float16"))
