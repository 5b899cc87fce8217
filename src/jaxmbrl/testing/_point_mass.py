"""PointMass: a tiny gymnax environment with known dynamics, reward and optimum.

A point of unit mass in `dim` dimensions is pushed by a force in [-1, 1]^dim, with a
little viscous damping. The reward penalises the squared distance of the *next*
position from the goal at the origin plus a small action cost, so the optimum is to
drive the point to the origin and hold it there. There is no terminal state; episodes
end at the time limit. The dynamics are linear in (position, velocity, force), which
makes it a fast, exact sanity check for models and planners.

obs = (position [dim], velocity [dim]).
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from jaxmbrl.types import Array, RewardFn


@struct.dataclass
class EnvState(environment.EnvState):
    """PointMass's state: where the mass is and how fast it moves."""

    position: jax.Array  # [dim]
    velocity: jax.Array  # [dim]
    time: int


@struct.dataclass
class EnvParams(environment.EnvParams):
    """PointMass's physics and episode length (the reward's weights too)."""

    dt: float = 0.1
    damping: float = 0.1
    action_cost: float = 0.01
    init_position: float = 1.0  # reset position ~ U[-init_position, init_position]^dim
    init_velocity: float = 0.1  # reset velocity ~ U[-init_velocity, init_velocity]^dim
    max_steps_in_episode: int = 50


def _integrate(params: EnvParams, position, velocity, action):
    force = jnp.clip(action, -1.0, 1.0)
    # Semi-implicit Euler: the position moves with the updated velocity.
    velocity = velocity + params.dt * (force - params.damping * velocity)
    position = position + params.dt * velocity
    return position, velocity, force


def _reward(params: EnvParams, next_position, force):
    return -(jnp.sum(jnp.square(next_position)) + params.action_cost * jnp.sum(jnp.square(force)))


class PointMass(environment.Environment[EnvState, EnvParams]):
    """Point mass driven to the origin (gymnax `Environment`).

    Args:
      dim: number of spatial dimensions (1 or 2 are the usual choices); the observation
        has 2 * dim entries and the action dim entries.
    """

    def __init__(self, dim: int = 1):
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}.")
        self.dim = dim
        self.obs_shape = (2 * dim,)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def step_env(
        self, key: Array, state: EnvState, action: Array, params: EnvParams
    ) -> Tuple[Array, EnvState, Array, Array, Dict[Any, Any]]:
        del key  # deterministic
        action = jnp.reshape(action, (self.dim,))
        position, velocity, force = _integrate(params, state.position, state.velocity, action)
        reward = _reward(params, position, force).astype(jnp.float32)
        # No stop_gradient: transitions stay differentiable for gradient-based planners.
        state = EnvState(position=position, velocity=velocity, time=state.time + 1)
        done = self.is_terminated(state, params)
        return self.get_obs(state), state, reward, done, {"discount": self.discount(state, params)}

    def reset_env(self, key: Array, params: EnvParams) -> Tuple[Array, EnvState]:
        k_pos, k_vel = jax.random.split(key)
        position = jax.random.uniform(
            k_pos, (self.dim,), jnp.float32, -params.init_position, params.init_position
        )
        velocity = jax.random.uniform(
            k_vel, (self.dim,), jnp.float32, -params.init_velocity, params.init_velocity
        )
        state = EnvState(position=position, velocity=velocity, time=jnp.zeros((), jnp.int32))
        return self.get_obs(state), state

    def get_obs(self, state: EnvState, params=None, key=None) -> Array:
        return jnp.concatenate([state.position, state.velocity]).astype(jnp.float32)

    def is_terminated(self, state: EnvState, params: EnvParams) -> Array:
        return jnp.zeros((), jnp.bool_)

    @property
    def name(self) -> str:
        return "PointMass-jaxmbrl"

    @property
    def num_actions(self) -> int:
        return self.dim

    def action_space(self, params: EnvParams | None = None) -> spaces.Box:
        return spaces.Box(low=-1.0, high=1.0, shape=(self.dim,), dtype=jnp.float32)

    def observation_space(self, params: EnvParams) -> spaces.Box:
        big = jnp.finfo(jnp.float32).max
        return spaces.Box(-big, big, shape=self.obs_shape, dtype=jnp.float32)

    def state_space(self, params: EnvParams) -> spaces.Dict:
        big = jnp.finfo(jnp.float32).max
        return spaces.Dict(
            {
                "position": spaces.Box(-big, big, (self.dim,), jnp.float32),
                "velocity": spaces.Box(-big, big, (self.dim,), jnp.float32),
                "time": spaces.Discrete(params.max_steps_in_episode),
            }
        )


def make_point_mass_reward_fn(params: EnvParams) -> RewardFn:
    """PointMass's reward as `(obs [2*dim], action [dim], next_obs [2*dim]) -> [] float32`."""

    def reward_fn(obs, action, next_obs):
        del obs
        dim = next_obs.shape[-1] // 2
        force = jnp.clip(action, -1.0, 1.0)
        return _reward(params, next_obs[:dim], force).astype(jnp.float32)

    return reward_fn


_default_reward_fn: RewardFn = make_point_mass_reward_fn(EnvParams())


def point_mass_reward_fn(obs, action, next_obs):
    """PointMass's reward under the default `EnvParams` (see `make_point_mass_reward_fn`)."""
    return _default_reward_fn(obs, action, next_obs)


# Forces of the discrete PointMass's actions: its planners choose among five pushes.
DISCRETE_FORCES = (-1.0, -0.5, 0.0, 0.5, 1.0)


class DiscretePointMass(PointMass):
    """The 1-D PointMass with `len(DISCRETE_FORCES)` discrete actions (int32 index of a
    force): a dense, action-dependent reward for tests of discrete planners and tree
    search (CartPole's and Acrobot's constant rewards tie every short plan)."""

    def __init__(self):
        super().__init__(dim=1)

    def step_env(self, key, state, action, params):
        force = jnp.asarray(DISCRETE_FORCES, jnp.float32)[jnp.reshape(action, ()).astype(jnp.int32)]
        return super().step_env(key, state, force[None], params)

    @property
    def name(self) -> str:
        return "PointMassDiscrete-jaxmbrl"

    @property
    def num_actions(self) -> int:
        return len(DISCRETE_FORCES)

    def action_space(self, params: EnvParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(len(DISCRETE_FORCES))


def make_discrete_point_mass_reward_fn(params: EnvParams) -> RewardFn:
    """The discrete PointMass's reward as `(obs [2], action [] int32, next_obs [2]) -> []`."""

    def reward_fn(obs, action, next_obs):
        del obs
        force = jnp.asarray(DISCRETE_FORCES, jnp.float32)[jnp.reshape(action, ()).astype(jnp.int32)]
        return _reward(params, next_obs[:1], force[None]).astype(jnp.float32)

    return reward_fn
