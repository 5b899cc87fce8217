"""Sutton & Barto's changing mazes (RL: An Introduction, 2nd ed., section 8.3), in gymnax.

Two 6 x 9 grids (row 0 at the top) whose wall in row 3 changes once, after a fixed
number of env steps counted over the whole run (across episodes):

    Blocking Maze (Example 8.2, Figure 8.4), change after 1,000 steps:

      before               after
      . . . . . . . . G    . . . . . . . . G
      . . . . . . . . .    . . . . . . . . .
      . . . . . . . . .    . . . . . . . . .
      # # # # # # # # .    . # # # # # # # #
      . . . . . . . . .    . . . . . . . . .
      . . . S . . . . .    . . . S . . . . .

    The short path to the right of the barrier (10 steps) is blocked and a longer one
    opens on the left (16 steps).

    Shortcut Maze (Example 8.3, Figure 8.5), change after 3,000 steps:

      before               after
      . . . . . . . . G    . . . . . . . . G
      . . . . . . . . .    . . . . . . . . .
      . . . . . . . . .    . . . . . . . . .
      . # # # # # # # #    . # # # # # # # .
      . . . . . . . . .    . . . . . . . . .
      . . . S . . . . .    . . . S . . . . .

    Only the path around the left (16 steps) exists at first; then a shortcut on the
    right (10 steps) opens without closing the long path.

Moves, rewards and observations are the Dyna Maze's (`_dyna_maze`): actions up, down,
right, left; +1 and termination on reaching G, 0 otherwise; a one-hot observation over
the 54 cells. The agent restarts at S after G.

The layout in force for a step is `layout` while the run's step counter
(`EnvState.total_steps`, the env steps taken before this one) is below
`EnvParams.change_step`, and `layout_after` from then on: with the default 1,000 the
1,000th step (counter 999) still moves in the old maze and the 1,001st in the new one.
An agent standing on a cell that has just become a wall may step off it as from a free
cell (that cannot happen in the Shortcut Maze, whose change only removes a wall).
"""
from __future__ import annotations

from functools import partial
from typing import Any, Dict, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces

# (`jaxmbrl.envs._dyna_maze` as an attribute is shadowed by the package's factory of that name.)
from jaxmbrl.envs._dyna_maze import DynaMaze, _parse, _transition_table
from jaxmbrl.envs._dyna_maze import EnvParams as _MazeParams
from jaxmbrl.envs._dyna_maze import EnvState as _MazeState
from jaxmbrl.types import Array, PRNGKey

BLOCKING_MAZE_LAYOUT: Tuple[str, ...] = (
    "........G",
    ".........",
    ".........",
    "########.",
    ".........",
    "...S.....",
)
"""Figure 8.4's maze for the first 1,000 steps: the gap is at the right end of row 3."""

BLOCKING_MAZE_LAYOUT_AFTER: Tuple[str, ...] = (
    "........G",
    ".........",
    ".........",
    ".########",
    ".........",
    "...S.....",
)
"""Figure 8.4's maze after 1,000 steps: the right gap is walled, one opens on the left."""

SHORTCUT_MAZE_LAYOUT: Tuple[str, ...] = BLOCKING_MAZE_LAYOUT_AFTER
"""Figure 8.5's maze for the first 3,000 steps: only the left path."""

SHORTCUT_MAZE_LAYOUT_AFTER: Tuple[str, ...] = (
    "........G",
    ".........",
    ".........",
    ".#######.",
    ".........",
    "...S.....",
)
"""Figure 8.5's maze after 3,000 steps: the left path and a shortcut on the right."""


@struct.dataclass
class EnvState(_MazeState):
    """The Dyna Maze's state plus `total_steps` [] int32: env steps since `reset`,
    over every episode (the auto-reset at the goal keeps it)."""

    total_steps: Array


@struct.dataclass
class EnvParams(_MazeParams):
    """`change_step`: the run's env step from which `layout_after` applies (may be traced)."""

    change_step: int = 1000


class ChangingMaze(DynaMaze):
    """A grid maze whose walls change once, at a fixed step of the whole run.

    Args:
      layout, layout_after: rows of '.', '#', 'S' and 'G' before and from
        `EnvParams.change_step` on; the same shape, start and goal.
      change_step: the default `EnvParams.change_step` (`make(..., change_step=k)`
        replaces it in the params).
      name: the env's name.
    """

    def __init__(self, layout: Sequence[str], layout_after: Sequence[str], change_step: int = 1000,
                 name: str = "ChangingMaze"):
        super().__init__(layout)
        rows_after, flat_after = _parse(layout_after)
        if (len(rows_after), len(rows_after[0])) != (self.nrows, self.ncols):
            raise ValueError(
                f"layout_after must have the shape of layout ({self.nrows} x {self.ncols}), got "
                f"{len(rows_after)} x {len(rows_after[0])}."
            )
        if flat_after.index("S") != self.start or flat_after.index("G") != self.goal:
            raise ValueError("layout_after must keep the start 'S' and goal 'G' cells of layout.")
        self.layout_after = rows_after
        self.walls_after = np.array([ch == "#" for ch in flat_after], np.bool_)
        self._next_after = jnp.asarray(_transition_table(rows_after))
        self._change_step = int(change_step)
        self._name = name

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(change_step=self._change_step)

    @property
    def name(self) -> str:
        return self._name

    def changed(self, state: EnvState, params: EnvParams) -> Array:
        """[] bool: whether the step taken from `state` moves in `layout_after`."""
        return state.total_steps >= params.change_step

    def step_env(
        self, key: PRNGKey, state: EnvState, action, params: EnvParams
    ) -> Tuple[Array, EnvState, Array, Array, Dict[str, Any]]:
        del key
        action = jnp.asarray(action, jnp.int32)
        position = jnp.where(self.changed(state, params), self._next_after[state.position, action],
                             self._next[state.position, action])
        state = EnvState(position=position, time=state.time + 1, total_steps=state.total_steps + 1)
        terminated = self.is_terminated(state, params)
        return self.get_obs(state), state, terminated.astype(jnp.float32), terminated, {}

    def reset_env(self, key: PRNGKey, params: EnvParams) -> Tuple[Array, EnvState]:
        del key, params
        state = EnvState(position=jnp.asarray(self.start, jnp.int32), time=jnp.zeros((), jnp.int32),
                         total_steps=jnp.zeros((), jnp.int32))
        return self.get_obs(state), state

    @partial(jax.jit, static_argnames=("self",))
    def step(self, key: PRNGKey, state: EnvState, action, params: Optional[EnvParams] = None):
        """gymnax's auto-resetting step, except that the run's step counter survives the reset."""
        params = self.default_params if params is None else params
        obs, next_state, reward, terminated, truncated, info = super().step(key, state, action, params)
        # The auto-reset replaced the whole state with `reset_env`'s, counter included.
        next_state = next_state.replace(total_steps=state.total_steps + 1)
        return obs, next_state, reward, terminated, truncated, info

    def state_space(self, params: EnvParams) -> spaces.Dict:
        return spaces.Dict(
            {
                "position": spaces.Discrete(self.num_states),
                "time": spaces.Discrete(params.max_steps_in_episode + 1),
                "total_steps": spaces.Discrete(np.iinfo(np.int32).max),
            }
        )


class BlockingMaze(ChangingMaze):
    """The Blocking Maze (Example 8.2): the short right path closes after 1,000 steps."""

    def __init__(self, layout: Sequence[str] = BLOCKING_MAZE_LAYOUT,
                 layout_after: Sequence[str] = BLOCKING_MAZE_LAYOUT_AFTER):
        super().__init__(layout, layout_after, change_step=1000, name="BlockingMaze")


class ShortcutMaze(ChangingMaze):
    """The Shortcut Maze (Example 8.3): a shortcut on the right opens after 3,000 steps."""

    def __init__(self, layout: Sequence[str] = SHORTCUT_MAZE_LAYOUT,
                 layout_after: Sequence[str] = SHORTCUT_MAZE_LAYOUT_AFTER):
        super().__init__(layout, layout_after, change_step=3000, name="ShortcutMaze")
