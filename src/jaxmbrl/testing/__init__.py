"""Test fixtures: PointMass, a tiny gymnax environment with a known optimum.

Importing this module registers PointMass with `jaxmbrl.envs.make` (as
"PointMass-jaxmbrl") and its reward with `jaxmbrl.envs.reward_fn` / `termination_fn`.
"""
from jaxmbrl.envs._known import register_known as _register_known
from jaxmbrl.envs._make import register as _register
from jaxmbrl.testing._point_mass import EnvParams as PointMassParams
from jaxmbrl.testing._point_mass import EnvState as PointMassState
from jaxmbrl.testing._linear_model import LinearModelState, linear_model
from jaxmbrl.testing._oracle import oracle_episode_returns
from jaxmbrl.testing._point_mass import PointMass, make_point_mass_reward_fn, point_mass_reward_fn

POINT_MASS_ID = "PointMass-jaxmbrl"

_register(POINT_MASS_ID, PointMass)
_register_known(POINT_MASS_ID, PointMassParams, make_point_mass_reward_fn)

__all__ = [
    "LinearModelState",
    "POINT_MASS_ID",
    "PointMass",
    "PointMassParams",
    "PointMassState",
    "linear_model",
    "make_point_mass_reward_fn",
    "oracle_episode_returns",
    "point_mass_reward_fn",
]
