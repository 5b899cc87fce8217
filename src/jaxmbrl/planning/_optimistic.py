"""Optimistic planning: rank candidates by an upper confidence bound over ensemble members.

With TSinf propagation every particle keeps one ensemble member for the whole horizon,
so the mean return of a member's particles is that member's estimate of a candidate's
return; their spread over members is the model's (epistemic) uncertainty about it.
Scoring a candidate by `mean + optimism * std` over members (`exploration.ucb_return`)
prefers plans whose outcome the model is unsure of: optimism in the face of
uncertainty, as in UCB bandits (Auer et al. 2002) and optimistic model-based RL
(H-UCRL, Curi et al. 2020). A negative optimism is pessimism (plans the members agree on).

`optimistic(model_fn, num_members)` wraps a planner's `model_fn`: its parameters become
`OptimisticParams(model, optimism)` (pass those as `model_params` to `plan`), and
`trajectory_return` / `population_return` reduce a candidate's particle returns with its
`score_particles` instead of their mean. Every planner built on `evaluate_candidates`
(random shooting, CEM, iCEM, MPPI, mppi_elites, the discrete ones) then plans
optimistically with no change of its own; `optimism = 0` is exactly the mean.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp

from jaxmbrl.types import Array, ModelFn, Params


class OptimisticParams(NamedTuple):
    """The `model_params` an `optimistic` model_fn takes.

    Attributes:
      model: the wrapped model_fn's own parameters.
      optimism: [] float32 (traced), the weight of the members' return std.
    """

    model: Params
    optimism: Any


class OptimisticModelFn:
    """A `model_fn` over `OptimisticParams` whose candidates score the UCB over members.

    Steps are the wrapped model's (its `over_particles` / `over_population` fast paths
    kept), with `params.model`. The wrapped model must step particle p of every
    candidate with member `p * K // P` for the whole horizon: the ensemble's TSinf
    (`models.ensemble_model(..., propagation="tsinf")` lays particles out so, in both
    the per-candidate and the particle-major population path).
    """

    def __init__(self, model_fn: ModelFn, num_members: int):
        self.model_fn = model_fn
        self.num_members = int(num_members)
        for name in ("over_particles", "over_population"):
            method = getattr(model_fn, name, None)
            if method is not None:
                setattr(self, name, _unwrapped(method))

    def __call__(self, key, params: OptimisticParams, obs, action):
        return self.model_fn(key, params.model, obs, action)

    def score_particles(self, params: OptimisticParams, returns: Array) -> Array:
        """A candidate's score from its particles' returns: [P, ...] -> [...] float32.

        `optimism == 0` gives exactly `returns.mean(0)` (the planners' usual score);
        otherwise the UCB over members of the members' mean returns.
        """
        from jaxmbrl.exploration._uncertainty import ucb_return

        p, k = returns.shape[0], self.num_members
        if p % k:
            raise ValueError(
                f"optimistic planning needs num_particles to be a multiple of the {k} ensemble members "
                f"(got {p}), so that every member steps as many particles; set num_particles={k * max(1, p // k)}"
            )
        per_member = returns.reshape((k, p // k) + returns.shape[1:]).mean(1)
        optimism = jnp.asarray(params.optimism, jnp.float32)
        # `where`, not `mean + 0 * std`: the default keeps the very bits of the plain mean
        # (an infinite return's std is NaN, and 0 * NaN would not vanish).
        return jnp.where(optimism == 0, returns.mean(0), ucb_return(per_member, optimism))


def _unwrapped(method):
    def call(key, params: OptimisticParams, obs, action):
        return method(key, params.model, obs, action)

    return call


def optimistic(model_fn: ModelFn, num_members: int) -> OptimisticModelFn:
    """`model_fn` whose candidates are ranked by `mean + optimism * std` over members.

    Args:
      model_fn: a planner model_fn whose particle p keeps member `p * K // P` (TSinf).
      num_members: K, the members that step particles (the ensemble's elites).

    Returns:
      An `OptimisticModelFn`: build the planner on it and pass
      `OptimisticParams(model_params, optimism)` as `plan`'s `model_params`. A
      `value_fn` or `proposal` of that planner receives the same `OptimisticParams`.
      `plan` raises a ValueError at trace time if num_particles is not a multiple of K.
    """
    if int(num_members) < 1:
        raise ValueError(f"optimistic: num_members must be >= 1, got {num_members}")
    return OptimisticModelFn(model_fn, num_members)
