"""The Dyna Maze of Sutton & Barto (RL: An Introduction, 2nd ed., Example 8.1), in gymnax.

A 6 x 9 grid, row 0 at the top:

    . . . . . . . # G
    . . # . . . . # .
    S . # . . . . # .
    . . # . . . . . .
    . . . . . # . . .
    . . . . . . . . .

Actions 0..3 move up, down, right, left; a move into a wall or off the grid leaves the
agent in place. Reaching G pays +1 and terminates the episode; every other step pays 0.
The shortest path from S to G takes 14 steps.

The observation is a float32 one-hot vector over the rows * cols cells (wall cells
included, never occupied), so that networks read it directly while a tabular agent
recovers the cell index with `state_index` (argmax). `tabular_num_states` and
`state_index` also accept gymnax envs whose observation is the cell index itself
(FrozenLake-misc: an int32 scalar over a `Discrete` observation space).
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces

from jaxmbrl.types import Array, PRNGKey

DYNA_MAZE_LAYOUT: Tuple[str, ...] = (
    ".......#G",
    "..#....#.",
    "S.#....#.",
    "..#......",
    ".....#...",
    ".........",
)
"""Figure 8.2's maze: '.' free, '#' wall, 'S' start, 'G' goal."""

# (row, col) offsets of up, down, right, left: the book's action order.
_MOVES = np.array([(-1, 0), (1, 0), (0, 1), (0, -1)], np.int32)


@struct.dataclass
class EnvState(environment.EnvState):
    """The agent's cell (row-major index, int32) and the elapsed episode steps."""

    position: Array
    time: Array


@struct.dataclass
class EnvParams(environment.EnvParams):
    """A time limit long enough that an untrained agent's random walk still finishes."""

    max_steps_in_episode: int = 10_000


def _parse(layout: Sequence[str]):
    rows = tuple(layout)
    if not rows or not rows[0] or any(len(r) != len(rows[0]) for r in rows):
        raise ValueError(f"layout must be non-empty rows of equal length, got {rows!r}.")
    chars = set("".join(rows))
    if not chars <= set(".#SG"):
        raise ValueError(f"layout may only contain '.', '#', 'S' and 'G', got {sorted(chars - set('.#SG'))}.")
    flat = "".join(rows)
    if flat.count("S") != 1 or flat.count("G") != 1:
        raise ValueError("layout must contain exactly one 'S' and one 'G'.")
    return rows, flat


def _transition_table(rows: Tuple[str, ...]) -> np.ndarray:
    """[num_states, 4] int32: the cell each action leads to (itself when blocked)."""
    nrows, ncols = len(rows), len(rows[0])
    table = np.zeros((nrows * ncols, len(_MOVES)), np.int32)
    for r in range(nrows):
        for c in range(ncols):
            for a, (dr, dc) in enumerate(_MOVES):
                nr, nc = r + dr, c + dc
                blocked = not (0 <= nr < nrows and 0 <= nc < ncols) or rows[nr][nc] == "#"
                table[r * ncols + c, a] = r * ncols + c if blocked else nr * ncols + nc
    return table


class DynaMaze(environment.Environment[EnvState, EnvParams]):
    """Sutton & Barto's Dyna Maze (Example 8.1) as a gymnax environment.

    Args:
      layout: rows of '.', '#', 'S' and 'G' (default: `DYNA_MAZE_LAYOUT`); any
        rectangular grid with one start and one goal works, e.g. a one-row chain.
    """

    def __init__(self, layout: Sequence[str] = DYNA_MAZE_LAYOUT):
        super().__init__()
        rows, flat = _parse(layout)
        self.layout = rows
        self.nrows, self.ncols = len(rows), len(rows[0])
        self.start = flat.index("S")
        self.goal = flat.index("G")
        self.walls = np.array([ch == "#" for ch in flat], np.bool_)
        # Built once on the host: a step is then one table lookup.
        self._next = jnp.asarray(_transition_table(rows))

    @property
    def num_states(self) -> int:
        """rows * cols: the length of the one-hot observation (walls included)."""
        return self.nrows * self.ncols

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    @property
    def name(self) -> str:
        return "DynaMaze"

    @property
    def num_actions(self) -> int:
        return len(_MOVES)

    def step_env(
        self, key: PRNGKey, state: EnvState, action, params: EnvParams
    ) -> Tuple[Array, EnvState, Array, Array, Dict[str, Any]]:
        del key
        position = self._next[state.position, jnp.asarray(action, jnp.int32)]
        state = EnvState(position=position, time=state.time + 1)
        terminated = self.is_terminated(state, params)
        reward = terminated.astype(jnp.float32)
        return self.get_obs(state), state, reward, terminated, {}

    def reset_env(self, key: PRNGKey, params: EnvParams) -> Tuple[Array, EnvState]:
        del key, params
        state = EnvState(position=jnp.asarray(self.start, jnp.int32), time=jnp.zeros((), jnp.int32))
        return self.get_obs(state), state

    def get_obs(self, state: EnvState, params: Optional[EnvParams] = None, key=None) -> Array:
        """[num_states] float32 one-hot of the agent's cell."""
        del params, key
        return jax.nn.one_hot(state.position, self.num_states, dtype=jnp.float32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> Array:
        del params
        return state.position == self.goal

    def action_space(self, params: Optional[EnvParams] = None) -> spaces.Discrete:
        del params
        return spaces.Discrete(len(_MOVES))

    def observation_space(self, params: EnvParams) -> spaces.Box:
        del params
        return spaces.Box(0.0, 1.0, (self.num_states,), jnp.float32)

    def state_space(self, params: EnvParams) -> spaces.Dict:
        return spaces.Dict(
            {
                "position": spaces.Discrete(self.num_states),
                "time": spaces.Discrete(params.max_steps_in_episode + 1),
            }
        )


def tabular_num_states(env, env_params) -> Optional[int]:
    """The number of table rows a tabular agent needs for `env`, or None.

    Finite-state envs are those whose observation is the state index itself (a
    `Discrete` observation space, e.g. FrozenLake-misc) or a one-hot vector of length
    `env.num_states` (DynaMaze). Anything else (CartPole's floats) returns None.
    """
    space = env.observation_space(env_params)
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    n = getattr(env, "num_states", None)
    if isinstance(n, int) and tuple(space.shape) == (n,):
        return n
    return None


def state_index(obs: Array) -> Array:
    """[] int32 state index of one observation: the scalar itself, or a one-hot's argmax."""
    obs = jnp.asarray(obs)
    if obs.ndim == 0:
        return obs.astype(jnp.int32)
    return jnp.argmax(obs.reshape(-1)).astype(jnp.int32)
