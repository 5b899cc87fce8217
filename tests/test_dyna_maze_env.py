"""Tests for the Dyna Maze (Sutton & Barto, Example 8.1) and the tabular state helpers."""
import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxmbrl import envs
from jaxmbrl.envs._dyna_maze import DYNA_MAZE_LAYOUT, state_index, tabular_num_states

UP, DOWN, RIGHT, LEFT = range(4)
WALLS = {(1, 2), (2, 2), (3, 2), (4, 5), (0, 7), (1, 7), (2, 7)}


# The module fixture below is built once: `make test` (--dist loadgroup) keeps this
# file's tests on one worker.
pytestmark = pytest.mark.xdist_group("dyna_maze_env")


@pytest.fixture(scope="module")
def maze():
    env, params, spec = envs.make("DynaMaze")
    return env, params, spec


def _cell(env, obs):
    return divmod(int(state_index(obs)), env.ncols)


def _successors(env, params):
    """{cell: [cell after each action]} for every free cell, from the env's own step_env."""
    free = [(r, c) for r in range(env.nrows) for c in range(env.ncols) if (r, c) not in WALLS]
    positions = jnp.array([r * env.ncols + c for r, c in free], jnp.int32)
    _, state = env.reset_env(jax.random.PRNGKey(0), params)

    def step_from(position, action):
        s = state.replace(position=position)
        obs, _, reward, terminated, _ = env.step_env(jax.random.PRNGKey(0), s, action, params)
        return state_index(obs), reward, terminated

    nxt, reward, terminated = jax.jit(
        jax.vmap(jax.vmap(step_from, in_axes=(None, 0)), in_axes=(0, None))
    )(positions, jnp.arange(4))
    succ = {cell: [divmod(int(n), env.ncols) for n in row] for cell, row in zip(free, np.asarray(nxt))}
    return succ, np.asarray(reward), np.asarray(terminated), free


def test_layout_start_goal_and_spec(maze):
    env, params, spec = maze
    assert (env.nrows, env.ncols) == (6, 9) and env.num_states == 54
    walls = {divmod(i, 9) for i in np.flatnonzero(env.walls)}
    assert walls == WALLS
    assert divmod(env.start, 9) == (2, 0) and divmod(env.goal, 9) == (0, 8)
    assert spec.discrete and spec.num_actions == 4 and spec.obs_shape == (54,)
    assert spec.max_steps >= 10_000
    obs, _ = env.reset(jax.random.PRNGKey(3), params)
    assert obs.dtype == jnp.float32 and float(obs.sum()) == 1.0
    assert _cell(env, obs) == (2, 0)


def test_walls_and_edges_leave_the_agent_in_place(maze):
    env, params, _ = maze
    succ, _, _, _ = _successors(env, params)
    assert succ[(2, 1)][RIGHT] == (2, 1)  # wall at (2, 2)
    assert succ[(0, 6)][RIGHT] == (0, 6)  # wall at (0, 7)
    assert succ[(5, 5)][UP] == (5, 5)  # wall at (4, 5)
    assert succ[(2, 0)][LEFT] == (2, 0)  # west edge
    assert succ[(0, 0)][UP] == (0, 0)  # north edge
    assert succ[(5, 8)][DOWN] == (5, 8)  # south edge
    assert succ[(3, 8)][UP] == (2, 8) and succ[(3, 8)][LEFT] == (3, 7)
    # Nothing ever moves into a wall or more than one cell.
    for cell, nexts in succ.items():
        for n in nexts:
            assert n not in WALLS and abs(n[0] - cell[0]) + abs(n[1] - cell[1]) <= 1


def test_reward_only_on_reaching_the_goal(maze):
    env, params, _ = maze
    succ, reward, terminated, free = _successors(env, params)
    enters_goal = np.array([[n == (0, 8) for n in succ[cell]] for cell in free])
    np.testing.assert_array_equal(reward, enters_goal.astype(np.float32))
    np.testing.assert_array_equal(terminated, enters_goal)


def test_shortest_path_is_14_by_bfs(maze):
    env, params, _ = maze
    succ, _, _, _ = _successors(env, params)
    dist = {(2, 0): 0}
    queue = collections.deque([(2, 0)])
    while queue:
        cell = queue.popleft()
        for n in succ[cell]:
            if n not in dist:
                dist[n] = dist[cell] + 1
                queue.append(n)
    assert dist[(0, 8)] == 14


def test_scripted_optimal_episode_through_the_adapter(maze):
    env, params, _ = maze
    # Down to row 4 (under the wall in column 2), right to (4, 4) (before the wall at
    # (4, 5)), up to row 3 (under the wall in column 7), right to column 8, up to the
    # goal: 2 + 4 + 1 + 4 + 3 = 14.
    actions = [DOWN, DOWN] + [RIGHT] * 4 + [UP] + [RIGHT] * 4 + [UP] * 3
    assert len(actions) == 14
    step = jax.jit(lambda k, s, o, a: envs.step(env, params, k, s, o, a))
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    for i, a in enumerate(actions):
        tr, obs, state = step(jax.random.PRNGKey(i), state, obs, jnp.int32(a))
        last = i == len(actions) - 1
        assert float(tr.reward) == float(last) and bool(tr.terminated) == last
        assert not bool(tr.truncated)
    # The transition keeps the true successor (the goal); the agent restarts at S.
    assert _cell(env, tr.next_obs) == (0, 8)
    assert _cell(env, obs) == (2, 0) and int(state.time) == 0


def test_time_limit_truncates_without_terminating():
    env, params, spec = envs.make("DynaMaze", max_steps_in_episode=3)
    assert spec.max_steps == 3
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    for i in range(3):
        tr, obs, state = envs.step(env, params, jax.random.PRNGKey(i), state, obs, jnp.int32(LEFT))
    assert bool(tr.truncated) and not bool(tr.terminated) and float(tr.reward) == 0.0


def test_custom_layout_and_bad_layouts():
    env, params, spec = envs.make("DynaMaze", layout=("S..G",))
    assert env.num_states == 4 and spec.obs_shape == (4,)
    with pytest.raises(ValueError, match="exactly one"):
        envs.make("DynaMaze", layout=("S..",))
    with pytest.raises(ValueError, match="equal length"):
        envs.make("DynaMaze", layout=("S..", "G."))


def test_tabular_helpers_cover_index_and_one_hot_observations(maze):
    env, params, _ = maze
    assert tabular_num_states(env, params) == 54
    lake, lake_params, lake_spec = envs.make("FrozenLake-misc")
    assert lake_spec.obs_shape == () and tabular_num_states(lake, lake_params) == 16
    obs, _ = lake.reset(jax.random.PRNGKey(0), lake_params)
    assert int(state_index(obs)) == int(obs) == 0
    cart, cart_params, _ = envs.make("CartPole-v1")
    assert tabular_num_states(cart, cart_params) is None
    one_hot = jax.nn.one_hot(37, 54, dtype=jnp.float32)
    assert int(state_index(one_hot)) == 37 and state_index(one_hot).dtype == jnp.int32
