"""Test fixtures: PointMass, a tiny gymnax environment with a known optimum; a local
launcher of multi-process runs (`launch_local`).

Importing this module registers PointMass with `jaxmbrl.envs.make` (as
"PointMass-jaxmbrl") and its reward with `jaxmbrl.envs.reward_fn` / `termination_fn`.
"""
from jaxmbrl.envs._known import register_known as _register_known
from jaxmbrl.envs._make import register as _register
from jaxmbrl.testing._point_mass import EnvParams as PointMassParams
from jaxmbrl.testing._point_mass import EnvState as PointMassState
from jaxmbrl.testing._linear_model import LinearModelState, linear_model
from jaxmbrl.testing._oracle import oracle_episode_returns
from jaxmbrl.testing._processes import ProcessResult, free_port, launch_local, process_env
from jaxmbrl.testing._point_mass import (
    DISCRETE_FORCES,
    DiscretePointMass,
    PointMass,
    make_discrete_point_mass_reward_fn,
    make_point_mass_reward_fn,
    point_mass_reward_fn,
)

POINT_MASS_ID = "PointMass-jaxmbrl"
DISCRETE_POINT_MASS_ID = "PointMassDiscrete-jaxmbrl"

_register(POINT_MASS_ID, PointMass)
_register_known(POINT_MASS_ID, PointMassParams, make_point_mass_reward_fn)
_register(DISCRETE_POINT_MASS_ID, DiscretePointMass)
_register_known(DISCRETE_POINT_MASS_ID, PointMassParams, make_discrete_point_mass_reward_fn)

__all__ = [
    "DISCRETE_FORCES",
    "DISCRETE_POINT_MASS_ID",
    "DiscretePointMass",
    "LinearModelState",
    "POINT_MASS_ID",
    "PointMass",
    "PointMassParams",
    "PointMassState",
    "ProcessResult",
    "free_port",
    "launch_local",
    "linear_model",
    "make_discrete_point_mass_reward_fn",
    "make_point_mass_reward_fn",
    "oracle_episode_returns",
    "point_mass_reward_fn",
    "process_env",
]
