"""Exploration in the tabular and bandit settings (issue 16): the changing mazes
(Sutton & Barto section 8.3), Dyna-Q+ and UCB action selection in tabular Dyna-Q, and
the 10-armed testbed (sections 2.3, 2.7)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmbrl import envs, exploration
from jaxmbrl.agents.dqn import epsilon_greedy, epsilon_schedule
from jaxmbrl.algorithms import dyna
from jaxmbrl.algorithms.dyna import _tabular
from jaxmbrl.algorithms.dyna._config import num_planning_steps
from jaxmbrl.envs._dyna_maze import state_index

UP, DOWN, RIGHT, LEFT = range(4)


def _batched(hp, size, **columns):
    out = jax.tree.map(lambda x: jnp.full((size,), x, jnp.float32), hp)
    return out._replace(**{k: jnp.asarray(v, jnp.float32) for k, v in columns.items()})


# --- the changing mazes ------------------------------------------------------------------


def _walls(mask):
    return {divmod(int(i), 9) for i in np.flatnonzero(mask)}


def test_maze_layouts_are_the_books():
    row3 = lambda cols: {(3, c) for c in cols}  # noqa: E731
    blocking, b_params, b_spec = envs.make("BlockingMaze")
    shortcut, s_params, s_spec = envs.make("ShortcutMaze")
    for env, spec in ((blocking, b_spec), (shortcut, s_spec)):
        assert (env.nrows, env.ncols) == (6, 9) and spec.obs_shape == (54,) and spec.num_actions == 4
        assert divmod(env.start, 9) == (5, 3) and divmod(env.goal, 9) == (0, 8)
    # Figure 8.4: the gap moves from the right end of the barrier to its left end.
    assert _walls(blocking.walls) == row3(range(0, 8)) and _walls(blocking.walls_after) == row3(range(1, 9))
    # Figure 8.5: the left gap stays and one opens on the right.
    assert _walls(shortcut.walls) == row3(range(1, 9)) and _walls(shortcut.walls_after) == row3(range(1, 8))
    assert (int(b_params.change_step), int(s_params.change_step)) == (1000, 3000)
    assert (blocking.name, shortcut.name) == ("BlockingMaze", "ShortcutMaze")
    assert dyna.tabular_num_states(blocking, b_params) == 54


def _run(env, params, actions, key=0):
    """Scripted actions through the adapter (one scan); returns transitions and the end state."""
    obs, state = envs.reset(env, params, jax.random.PRNGKey(key))

    def body(carry, inp):
        obs, state = carry
        k, a = inp
        tr, obs, state = envs.step(env, params, k, state, obs, a)
        return (obs, state), (tr, state.total_steps, state_index(tr.next_obs))

    actions = jnp.asarray(actions, jnp.int32)
    keys = jax.random.split(jax.random.PRNGKey(key + 1), actions.shape[0])
    (obs, state), (tr, total, cells) = jax.jit(lambda k, a: jax.lax.scan(body, (obs, state), (k, a)))(keys, actions)
    return tr, np.asarray(total), np.asarray(cells), obs, state


def test_blocking_maze_changes_at_step_1000_across_episode_resets():
    env, params, _ = envs.make("BlockingMaze")
    short = [RIGHT] * 5 + [UP] * 5  # S (5, 3) -> (5, 8) -> through the right gap -> G
    tr, total, cells, obs, state = _run(env, params, short * 100 + short)
    reward = np.asarray(tr.reward)
    # 100 episodes of 10 steps in the first 1,000 steps: the counter survives every reset.
    assert reward[:1000].sum() == 100 and (reward[9:1000:10] == 1).all()
    np.testing.assert_array_equal(total, np.arange(1, 1011))
    # Step 1,001 onwards (counter 1000): (3, 8) is now a wall, so the 7th move of the
    # path (up from (4, 8)) stays put and the episode does not finish.
    assert divmod(int(cells[1005]), 9) == (4, 8) and divmod(int(cells[1006]), 9) == (4, 8)
    assert reward[1000:].sum() == 0
    assert int(state.total_steps) == 1010 and int(state.time) == 10


def test_blocking_maze_step_999_old_step_1000_new():
    env, params, _ = envs.make("BlockingMaze")
    _, state = envs.reset(env, params, jax.random.PRNGKey(0))
    below_gap = state.replace(position=jnp.int32(4 * 9 + 8))
    up_from = jax.jit(lambda t: env.step_env(jax.random.PRNGKey(0), below_gap.replace(total_steps=t), UP, params))
    assert divmod(int(state_index(up_from(jnp.int32(999))[0])), 9) == (3, 8)
    assert divmod(int(state_index(up_from(jnp.int32(1000))[0])), 9) == (4, 8)
    left_gap = state.replace(position=jnp.int32(4 * 9 + 0))
    up_left = jax.jit(lambda t: env.step_env(jax.random.PRNGKey(0), left_gap.replace(total_steps=t), UP, params))
    assert divmod(int(state_index(up_left(jnp.int32(999))[0])), 9) == (4, 0)
    assert divmod(int(state_index(up_left(jnp.int32(1000))[0])), 9) == (3, 0)


def test_shortcut_maze_opens_at_step_3000_across_episode_resets():
    env, params, _ = envs.make("ShortcutMaze")
    long = [LEFT] * 3 + [UP] * 5 + [RIGHT] * 8  # around the left end: 16 steps
    assert 187 * len(long) == 2992
    # At S after 2,992 steps; right to (5, 8) and up to (4, 8) ends with counter 2998.
    probe = [RIGHT] * 5 + [UP] + [UP, UP] + [UP] * 4
    tr, total, cells, obs, state = _run(env, params, long * 187 + probe)
    reward = np.asarray(tr.reward)
    assert reward[:2992].sum() == 187 and total[2998 - 1] == 2998
    # Counters 2998 and 2999 (the 2,999th and 3,000th steps): (3, 8) is still a wall.
    assert divmod(int(cells[2998]), 9) == (4, 8) and divmod(int(cells[2999]), 9) == (4, 8)
    # Counter 3000: the shortcut is open; three more ups reach the goal.
    assert divmod(int(cells[3000]), 9) == (3, 8) and divmod(int(cells[3003]), 9) == (0, 8)
    assert reward[3003] == 1.0 and reward[2992:3003].sum() == 0


def test_goal_terminates_with_the_true_final_observation_and_restarts_at_start():
    env, params, _ = envs.make("BlockingMaze")
    tr, total, cells, obs, state = _run(env, params, [RIGHT] * 5 + [UP] * 5)
    last = jax.tree.map(lambda x: x[-1], tr)
    assert bool(last.terminated) and not bool(last.truncated) and float(last.reward) == 1.0
    assert not np.asarray(tr.terminated)[:-1].any()
    assert divmod(int(state_index(last.next_obs)), 9) == (0, 8)  # final_observation: G
    assert divmod(int(state_index(obs)), 9) == (5, 3)  # the obs to act on: S again
    assert int(state.time) == 0 and int(state.total_steps) == 10


def test_change_step_is_a_param_and_layouts_are_constructor_kwargs():
    env, params, _ = envs.make("BlockingMaze", change_step=3)
    assert int(params.change_step) == 3
    _, total, cells, _, _ = _run(env, params, [RIGHT] * 5 + [UP] * 3)
    # Counter >= 3 by the time the agent is under (3, 8): the wall is already there.
    assert divmod(int(cells[-1]), 9) == (4, 8)
    chain, chain_params, spec = envs.make("ShortcutMaze", layout=("S#G",), layout_after=("S.G",), change_step=1)
    assert spec.obs_shape == (3,)
    _, _, cells, _, _ = _run(chain, chain_params, [RIGHT, RIGHT, RIGHT])
    assert cells.tolist() == [0, 1, 2]  # blocked at counter 0, open from counter 1
    with pytest.raises(ValueError, match="start 'S' and goal 'G'"):
        envs.make("BlockingMaze", layout_after=("G.......S",) + ("." * 9,) * 5)
    with pytest.raises(ValueError, match="shape"):
        envs.make("ShortcutMaze", layout_after=("S.G",))


# --- Dyna-Q+ and UCB in tabular Dyna-Q ------------------------------------------------------


def test_dyna_q_plus_bonus_hand_computed():
    model = _tabular.empty_model(3, 2)
    model = dyna.record(model, 0, 1, 0.5, 2, False, step=4)  # (0, 1) tried at env step 4
    q = jnp.zeros((3, 2), jnp.float32).at[2].set(jnp.array([1.0, 0.2])).at[0, 0].set(0.4)
    # now = 13: tau = 9, bonus = 0.1 * 3 = 0.3; target = 0.5 + 0.3 + 0.9 * 1.0 = 1.7.
    new = _tabular.bonus_planning_update(q, model, 0, 1, 0.5, 0.9, 0.1, 13)
    assert float(new[0, 1]) == pytest.approx(0.5 * 1.7)
    # The untried (0, 0) is modelled as staying in 0 with reward 0, tried at step 0:
    # tau = 13, target = 0.1 * sqrt(13) + 0.9 * max(0.4, 0) = 0.7206; Q += 0.5 * (0.7206 - 0.4).
    new = _tabular.bonus_planning_update(q, model, 0, 0, 0.5, 0.9, 0.1, 13)
    assert float(new[0, 0]) == pytest.approx(0.4 + 0.5 * (0.1 * math.sqrt(13) + 0.9 * 0.4 - 0.4), rel=1e-6)
    # kappa = 0 on a tried pair is the plain update, to the bit.
    np.testing.assert_array_equal(_tabular.bonus_planning_update(q, model, 0, 1, 0.5, 0.9, 0.0, 13),
                                  dyna.replay_pair(q, model, 0, 0.5, 0.9))
    # A second try resets tau.
    model = dyna.record(model, 0, 1, 0.5, 2, False, step=13)
    assert float(_tabular.exploration_bonus(model, 0, 1, 13, 0.1)) == 0.0
    assert int(model.count[0, 1]) == 2 and int(model.num_visited) == 1


def test_planning_pairs_plain_vs_plus():
    model = _tabular.empty_model(5, 3)
    for s, a in [(1, 0), (1, 2), (3, 1)]:
        model = dyna.record(model, s, a, 0.0, 0, False, step=1)
    key = jax.random.PRNGKey(0)
    s, a = _tabular.planning_pairs(key, model, 600, jnp.bool_(False))
    # Plain Dyna-Q: only tried pairs, drawn exactly as it always has been.
    picks = model.pairs[jax.random.randint(key, (600,), 0, model.num_seen)]
    np.testing.assert_array_equal(s * 3 + a, picks)
    assert set(zip(s.tolist(), a.tolist())) == {(1, 0), (1, 2), (3, 1)}
    # Dyna-Q+: visited states only, every action of them.
    s, a = _tabular.planning_pairs(key, model, 600, jnp.bool_(True))
    assert set(zip(s.tolist(), a.tolist())) == {(x, y) for x in (1, 3) for y in range(3)}


def test_ucb_untried_first_then_hand_computed_argmax():
    keys = jax.random.split(jax.random.PRNGKey(0), 64)
    pick = jax.jit(jax.vmap(exploration.ucb_action, in_axes=(0, None, None, None, None)))
    # Untried actions first, ties between them at random, however good the others look.
    chosen = pick(keys, jnp.array([5.0, 9.0, -1.0, 0.0]), jnp.array([3, 5, 0, 0]), 9, 2.0)
    assert set(np.asarray(chosen).tolist()) == {2, 3}
    # values [0.5, 1.0, 0.2], counts [4, 1, 2], t = 10, c = 2: scores
    # 0.5 + 2 sqrt(ln 10 / 4) = 2.017, 1 + 2 sqrt(ln 10) = 4.035, 0.2 + 2 sqrt(ln 10 / 2) = 2.346.
    values, counts = jnp.array([0.5, 1.0, 0.2]), jnp.array([4, 1, 2])
    scores = exploration.ucb_scores(values, counts, 10, 2.0)
    ln10 = math.log(10)
    np.testing.assert_allclose(scores, [0.5 + 2 * math.sqrt(ln10 / 4), 1 + 2 * math.sqrt(ln10),
                                        0.2 + 2 * math.sqrt(ln10 / 2)], rtol=1e-6)
    assert set(np.asarray(pick(keys, values, counts, 10, 2.0)).tolist()) == {1}
    # The bonus overrides the greedy choice: [1.0, 0.9] tried [100, 1] times at t = 101,
    # c = 1: 1 + sqrt(ln 101 / 100) = 1.21 < 0.9 + sqrt(ln 101) = 3.05; with c = 0, greedy.
    assert set(np.asarray(pick(keys, jnp.array([1.0, 0.9]), jnp.array([100, 1]), 101, 1.0)).tolist()) == {1}
    assert set(np.asarray(pick(keys, jnp.array([1.0, 0.9]), jnp.array([100, 1]), 101, 0.0)).tolist()) == {0}


def test_tabular_ucb_tries_every_action_of_a_state_before_any_twice():
    cfg = dyna.Config.tiny(exploration="ucb", steps_per_iteration=300)
    train = dyna.make_train(cfg)
    state, metrics = jax.jit(train.run)(jax.random.PRNGKey(0), cfg.hparams())
    count = np.asarray(state.model.count)
    assert count.sum() == cfg.num_iterations * cfg.steps_per_iteration
    visited = count.sum(1) > 0
    # Untried first: no action of a state is repeated while another one is untried.
    assert ((count.max(1) <= 1) | (count.min(1) >= 1))[visited].all()
    assert (count[visited].max(1) > 1).any()  # the check has teeth: states were revisited
    np.testing.assert_array_equal(count > 0, np.asarray(state.model.seen))


def _old_tabular_run(cfg, train, key, hp):
    """Tabular Dyna-Q's loop as it was before Dyna-Q+ (from the public pieces): the
    reference that the default kappa = 0 must reproduce bit for bit."""
    from jaxmbrl.algorithms.dyna._config import as_float_hparams

    env, env_params, _ = envs.make(cfg.env_id)
    state = train.init(key, hp)
    hp = as_float_hparams(hp)

    def env_step(carry, k):
        env_state, obs, q, model, steps = carry
        k_act, k_env, k_plan = jax.random.split(k, 3)
        s = state_index(obs)
        action = epsilon_greedy(k_act, q[s], epsilon_schedule(hp.epsilon_start, hp.epsilon, 0)(steps))
        tr, obs, env_state = envs.step(env, env_params, k_env, env_state, obs, action)
        next_s = state_index(tr.next_obs)
        q, _ = dyna.q_learning_update(q, s, action, tr.reward, next_s, tr.terminated, hp.learning_rate, hp.discount)
        model = dyna.record(model, s, action, tr.reward, next_s, tr.terminated)
        picks = jax.random.randint(k_plan, (cfg.max_planning_steps,), 0, model.num_seen)
        n = num_planning_steps(hp, cfg.max_planning_steps)
        q = jax.lax.fori_loop(0, n, lambda i, q: dyna.replay_pair(q, model, picks[i], hp.learning_rate,
                                                                   hp.discount), q)
        return (env_state, obs, q, model, steps + 1), None

    def iteration(carry, _):
        run_key, inner = carry
        run_key, k_steps = jax.random.split(run_key)
        inner, _ = jax.lax.scan(env_step, inner, jax.random.split(k_steps, cfg.steps_per_iteration))
        return (run_key, inner), None

    inner = (state.env_state, state.obs, state.q, state.model, state.env_steps)
    (_, inner), _ = jax.lax.scan(iteration, (state.key, inner), None, length=cfg.num_iterations)
    return inner[2]


def test_default_kappa_zero_repeats_plain_dyna_q_exactly():
    cfg = dyna.Config(num_iterations=2, steps_per_iteration=1500, max_planning_steps=5, max_episodes=64)
    train = dyna.make_train(cfg)
    hp = cfg.hparams()
    assert float(hp.bonus_kappa) == 0.0 and cfg.exploration == "epsilon_greedy"
    state, metrics = jax.jit(train.run)(jax.random.PRNGKey(3), hp)
    assert int(state.episodes.count) > 5  # Q learned something worth comparing
    old_q = jax.jit(lambda k: _old_tabular_run(cfg, train, k, hp))(jax.random.PRNGKey(3))
    np.testing.assert_array_equal(state.q, old_q)
    # Plain Dyna-Q never updates an untried pair; Dyna-Q+ plans them (the bonus makes them > 0).
    assert (np.asarray(state.q)[~np.asarray(state.model.seen)] == 0).all()
    plus, _ = jax.jit(train.run)(jax.random.PRNGKey(3), hp._replace(bonus_kappa=1e-3))
    visited = np.asarray(plus.model.seen).any(1, keepdims=True)
    untried = visited & ~np.asarray(plus.model.seen)
    assert untried.any() and (np.asarray(plus.q)[untried] > 0).any()


def test_dyna_q_plus_finds_the_shortcut_plain_dyna_q_does_not():
    # A shortened Figure 8.5: shortcut opens at 1,500 of 3,000 steps; 6 seeds, both
    # methods in one vmapped program.
    cfg = dyna.Config(env_id="ShortcutMaze", env_kwargs={"change_step": 1500}, num_iterations=3,
                      steps_per_iteration=1000, max_planning_steps=30, max_episodes=400)
    train = dyna.make_train(cfg)
    seeds = 6
    hp = _batched(cfg.hparams(), 2 * seeds, learning_rate=[1.0] * 2 * seeds,
                  bonus_kappa=[0.0] * seeds + [1e-3] * seeds)
    keys = jnp.tile(jax.random.split(jax.random.PRNGKey(0), seeds), (2, 1))
    state, _ = jax.jit(jax.vmap(train.run))(keys, hp)
    lengths = np.asarray(state.episodes.lengths).reshape(2, seeds, -1)
    ends = np.cumsum(lengths, -1)
    after = ((ends > 2500) & (ends <= 3000) & (lengths > 0)).sum(-1)  # [method, seed] goals in steps 2501-3000
    # The long path takes 16 steps, so more than 500 / 16 + 1 goals in 500 steps prove the
    # shortcut (10 steps) was taken.
    on_shortcut = after > 32
    assert on_shortcut[1].all() and on_shortcut[0].sum() <= seeds // 3, after


def test_bad_exploration_settings_fail_with_one_line_errors():
    with pytest.raises(ValueError, match="exploration='softmax' is unknown"):
        dyna.make_train(dyna.Config.tiny(exploration="softmax"))
    with pytest.raises(ValueError, match="tabular only"):
        dyna.make_train(dyna.Config.tiny(mode="deep", exploration="ucb"))
    cfg = dyna.Config.tiny()
    for field in ("bonus_kappa", "ucb_c"):
        with pytest.raises(ValueError, match=f"HParams.{field}=-0.5 is out of range"):
            cfg.validate_hparams(cfg.hparams()._replace(**{field: -0.5}))
    cfg.validate_hparams(cfg.hparams()._replace(bonus_kappa=1e-3, ucb_c=0.0))


# --- the 10-armed testbed ------------------------------------------------------------------


def test_bandit_sample_average_update_hand_computed():
    state = exploration.bandit_init(3)
    for arm, reward in [(0, 1.0), (2, -1.0), (0, 3.0), (0, 2.0)]:
        state = exploration.bandit_update(state, arm, reward)
    np.testing.assert_allclose(state.values, [2.0, 0.0, -1.0])
    assert state.counts.tolist() == [3, 0, 1] and int(state.t) == 4
    with pytest.raises(ValueError, match="bandit policy 'greedy' is unknown"):
        exploration.run_bandit(jax.random.PRNGKey(0), "greedy")


def test_bandit_ucb_beats_epsilon_greedy_repeats_and_differs_across_seeds():
    run = jax.jit(lambda k: (exploration.run_testbed(k, "epsilon_greedy", 200, epsilon=0.1),
                             exploration.run_testbed(k, "ucb", 200, c=2.0)))
    eps, ucb = run(jax.random.PRNGKey(0))
    assert eps.rewards.shape == (200, 1000) and ucb.optimal.shape == (200, 1000)
    last_eps, last_ucb = float(eps.rewards[:, -200:].mean()), float(ucb.rewards[:, -200:].mean())
    # Figure 2.4: about 1.35 vs 1.5 on average.
    assert last_ucb > last_eps + 0.03 and 1.2 < last_eps < 1.5 and 1.35 < last_ucb < 1.65
    # UCB tries each of the 10 arms once in the first 10 rounds.
    arms_first_10 = np.asarray(ucb.optimal)[:, :10].sum(1)
    assert (arms_first_10 == 1).all()
    again_eps, again_ucb = run(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(eps.rewards, again_eps.rewards)
    np.testing.assert_array_equal(ucb.rewards, again_ucb.rewards)
    other, _ = run(jax.random.PRNGKey(1))
    assert not np.array_equal(np.asarray(other.rewards), np.asarray(eps.rewards))
    rows = np.asarray(eps.rewards)
    assert not np.array_equal(rows[0], rows[1])  # runs within a batch differ too
