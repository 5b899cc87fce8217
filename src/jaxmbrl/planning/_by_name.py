"""Planners chosen by name, as the algorithms' configs and the command line do."""
from __future__ import annotations

from typing import Any

from jaxmbrl.planning._base import Planner
from jaxmbrl.planning._continuous import cem, icem, mppi, random_shooting
from jaxmbrl.planning._discrete import discrete_cem, discrete_random_shooting

CONTINUOUS_PLANNERS = ("cem", "icem", "mppi", "random_shooting")
DISCRETE_PLANNERS = ("discrete_cem", "discrete_random_shooting")
PLANNERS = ("auto",) + CONTINUOUS_PLANNERS + DISCRETE_PLANNERS


def resolve_planner(name: str, spec, env_id: str = "") -> str:
    """The planner `name` stands for in an env of `spec` ("auto": CEM of the right kind).

    Raises:
      ValueError for an unknown name or one that does not fit the action space.
    """
    env = env_id or spec.env_id
    if name not in PLANNERS:
        raise ValueError(f"planner={name!r} is unknown; choose one of {PLANNERS}.")
    if name == "auto":
        return "discrete_cem" if spec.discrete else "cem"
    if spec.discrete and name in CONTINUOUS_PLANNERS:
        raise ValueError(
            f"planner={name!r} needs continuous actions, but {env} is discrete "
            f"({spec.num_actions} actions); use planner='discrete_cem' or 'discrete_random_shooting'."
        )
    if not spec.discrete and name in DISCRETE_PLANNERS:
        raise ValueError(
            f"planner={name!r} needs discrete actions, but {env} is continuous; "
            f"use planner='cem', 'icem', 'mppi' or 'random_shooting'."
        )
    return name


def make_planner(name: str, model_fn, spec, *, horizon: int, num_samples: int, num_elites: int,
                 num_iters: int, num_particles: int = 1, discount: Any = 1.0, alpha: Any = 0.1,
                 mppi_temperature: Any = 1.0) -> Planner:
    """Builds the planner `name` (see `PLANNERS`; resolved with `resolve_planner`).

    `num_elites`, `num_iters` and `alpha` are ignored by planners that do not use them
    (random shooting); `mppi_temperature` is MPPI's lambda.
    """
    name = resolve_planner(name, spec)
    common = dict(horizon=horizon, num_samples=num_samples, num_particles=num_particles, discount=discount)
    if name == "cem":
        return cem(model_fn, spec, num_elites=num_elites, num_iters=num_iters, alpha=alpha, **common)
    if name == "icem":
        return icem(model_fn, spec, num_elites=num_elites, num_iters=num_iters, alpha=alpha, **common)
    if name == "mppi":
        return mppi(model_fn, spec, num_iters=num_iters, lambda_=mppi_temperature, alpha=alpha, **common)
    if name == "random_shooting":
        return random_shooting(model_fn, spec, **common)
    if name == "discrete_cem":
        return discrete_cem(model_fn, spec, num_elites=num_elites, num_iters=num_iters, alpha=alpha, **common)
    return discrete_random_shooting(model_fn, spec, **common)
