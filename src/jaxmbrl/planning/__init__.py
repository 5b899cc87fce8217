"""Sampling-based model-predictive planners.

Every planner is a `Planner(init, plan)` of pure functions over a `model_fn(key, params,
obs, action) -> (next_obs, reward, terminated)`: a learned model or the true dynamics
(`jaxmbrl.envs.true_model`) are interchangeable.
"""
from jaxmbrl.planning._base import (
    PlanInfo,
    Planner,
    PlannerState,
    evaluate_candidates,
    particle_step_fn,
    shift,
    trajectory_return,
)
from jaxmbrl.planning._by_name import (
    CONTINUOUS_PLANNERS,
    DISCRETE_PLANNERS,
    PLANNERS,
    make_planner,
    resolve_planner,
)
from jaxmbrl.planning._continuous import cem, cem_update, colored_noise, icem, mppi, random_shooting
from jaxmbrl.planning._discrete import discrete_cem, discrete_random_shooting

__all__ = [
    "CONTINUOUS_PLANNERS",
    "DISCRETE_PLANNERS",
    "PLANNERS",
    "PlanInfo",
    "Planner",
    "PlannerState",
    "cem",
    "cem_update",
    "colored_noise",
    "discrete_cem",
    "discrete_random_shooting",
    "evaluate_candidates",
    "icem",
    "make_planner",
    "mppi",
    "particle_step_fn",
    "random_shooting",
    "resolve_planner",
    "shift",
    "trajectory_return",
]
