"""A complete custom gymnax environment, brought to jaxmbrl without editing the library.

`Heater`: keep a room at a set point. The state is the room temperature; the action is
the heater power in [-1, 1] (negative: cooling); the room loses heat to the outside.
The reward is minus the squared distance of the *next* temperature from the set point
minus a small power cost, so it is a known function of (obs, action, next_obs).

Use it three ways:

    # 1. As an object, unregistered:
    train = pets.make_train(pets.Config(env_id="Heater"), env=Heater(), reward_fn=heater_reward)

    # 2. Registered by importing this module (it calls `envs.register` at the bottom):
    import my_env
    train = pets.make_train(pets.Config(env_id="Heater-v0", env_kwargs={"set_point": 1.0}))

    # 3. From the command line, with the folder holding this file on PYTHONPATH (or as cwd):
    #    jaxmbrl --import my_env train pets --env Heater-v0 --out runs/heater
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from jaxmbrl import envs


@struct.dataclass
class HeaterState(environment.EnvState):
    temperature: jax.Array  # []
    time: jax.Array  # [] int32


@struct.dataclass
class HeaterParams(environment.EnvParams):
    set_point: float = 0.5
    outside: float = -1.0
    loss: float = 0.1  # fraction of the gap to the outside lost per step
    power: float = 0.3  # temperature change per step at full power
    power_cost: float = 0.01
    max_steps_in_episode: int = 50


class Heater(environment.Environment[HeaterState, HeaterParams]):
    """One room, one heater (a gymnax `Environment`: `step_env`, `reset_env`, spaces)."""

    @property
    def default_params(self) -> HeaterParams:
        return HeaterParams()

    def step_env(self, key, state: HeaterState, action, params: HeaterParams):
        del key  # deterministic
        power = jnp.clip(jnp.reshape(action, ()), -1.0, 1.0)
        temperature = (state.temperature + params.power * power
                       - params.loss * (state.temperature - params.outside))
        reward = heater_reward_of(params)(state.temperature[None], action, temperature[None])
        state = HeaterState(temperature=temperature, time=state.time + 1)
        # No terminal state: gymnax truncates at max_steps_in_episode by itself.
        terminated = jnp.zeros((), jnp.bool_)
        return self.get_obs(state), state, reward, terminated, {"discount": jnp.float32(1.0)}

    def reset_env(self, key, params: HeaterParams):
        temperature = jax.random.uniform(key, (), jnp.float32, -1.0, 1.0)
        state = HeaterState(temperature=temperature, time=jnp.zeros((), jnp.int32))
        return self.get_obs(state), state

    def get_obs(self, state: HeaterState, params=None, key=None):
        return state.temperature[None].astype(jnp.float32)

    @property
    def name(self) -> str:
        return "Heater-v0"

    def action_space(self, params=None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (1,), jnp.float32)

    def observation_space(self, params) -> spaces.Box:
        return spaces.Box(-10.0, 10.0, (1,), jnp.float32)


def heater_reward_of(params: HeaterParams):
    """The reward as a function of (obs [1], action [1], next_obs [1]) -> [] float32."""

    def reward_fn(obs, action, next_obs):
        del obs
        power = jnp.clip(jnp.reshape(action, ()), -1.0, 1.0)
        gap = next_obs[0] - params.set_point
        return (-(gap**2) - params.power_cost * power**2).astype(jnp.float32)

    return reward_fn


heater_reward = heater_reward_of(HeaterParams())

# Registering makes "Heater-v0" an id like any gymnax one (`envs.make`, Config.env_id,
# `jaxmbrl envs`), and its reward a known function, so PETS needs no learned reward.
envs.register("Heater-v0", Heater)
envs.register_known("Heater-v0", HeaterParams, heater_reward_of)
