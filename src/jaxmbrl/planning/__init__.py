"""Sampling-based model-predictive planners, with floats passed at call time (mctx style).

Continuous: random shooting, CEM, iCEM, MPPI and `mppi_elites` (TD-MPC's MPPI over
elites with an adapted std); discrete: random shooting and CEM; and tree search.

Every planner is a `Planner(init, plan, hparams)` of pure functions over a
`model_fn(key, params, obs, action) -> (next_obs, reward, terminated)`: a learned model
or the true dynamics (`jaxmbrl.envs.true_model`) are interchangeable.

    planner = planning.make_planner("cem", model_fn, spec, horizon=20, num_samples=100,
                                    num_elites=10, num_iters=4)
    hp = planner.hparams._replace(alpha=0.2, discount=0.99)   # a CEMHParams
    action, state, info = jax.jit(planner.plan)(key, planner.init(), params, obs, hp)

Shapes (horizon, samples, elites, iterations, particles, proposals) are fixed when the
planner is built; its floats are its own HParams NamedTuple, passed to `plan` (`None`:
`planner.hparams`), so one compiled `plan` serves every value and a vmap over HParams
sweeps them. Each HParams field has a documented `types.Range` (`check_hparams`).

Trajectories are scored by `trajectory_return` (one candidate), or all at once by
`population_return` when the model offers `over_population` (every learned model does),
both with an optional terminal `value_fn(params, obs)`; a `proposal(key, params, obs)` policy prior contributes
`num_proposals` rolled-out sequences (`proposal_sequences`) to every population.
`optimistic(model_fn, num_members)` makes every such planner rank candidates by a UCB of
their return over ensemble members (TSinf), with the optimism passed in `model_params`.
Tree search (`mcts`, `mcts_search`: mctx's Gumbel MuZero or pUCT over the same
`model_fn`, leaves valued by a `value_fn` or by random rollouts) is registered as "mcts"
and "mcts_puct" for discrete actions. Planners are found by name through one registry (`register_planner`, `make_planner`,
`planner_hparams`, `planner_float_fields`); `PLANNERS`, `CONTINUOUS_PLANNERS` and
`DISCRETE_PLANNERS` are derived from it at each access.
"""
from jaxmbrl.planning import _by_name
from jaxmbrl.planning._base import (
    PlanInfo,
    Planner,
    PlannerState,
    ProposalFn,
    ValueFn,
    evaluate_candidates,
    particle_step_fn,
    population_return,
    proposal_sequences,
    score_particles,
    shift,
    trajectory_return,
)
from jaxmbrl.planning._by_name import (
    PlannerEntry,
    check_hparams,
    make_planner,
    planner_float_fields,
    planner_hparams,
    planner_names,
    register_planner,
    resolve_planner,
)
from jaxmbrl.planning._optimistic import OptimisticModelFn, OptimisticParams, optimistic
from jaxmbrl.planning._continuous import (
    CEMHParams,
    ICEMHParams,
    MPPIElitesHParams,
    MPPIHParams,
    RandomShootingHParams,
    cem,
    cem_update,
    colored_noise,
    icem,
    mppi,
    mppi_elites,
    random_shooting,
)
from jaxmbrl.planning._discrete import (
    DiscreteCEMHParams,
    DiscreteRandomShootingHParams,
    discrete_cem,
    discrete_random_shooting,
)
from jaxmbrl.planning._tree import MCTSHParams, PriorFn, PUCTHParams, SearchOutput, mcts, mcts_search


def __getattr__(name: str):
    # Recomputed from the registry at each access, so a user's planner is listed too.
    if name in ("PLANNERS", "CONTINUOUS_PLANNERS", "DISCRETE_PLANNERS"):
        return getattr(_by_name, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CEMHParams",
    "CONTINUOUS_PLANNERS",
    "DISCRETE_PLANNERS",
    "DiscreteCEMHParams",
    "DiscreteRandomShootingHParams",
    "ICEMHParams",
    "MCTSHParams",
    "MPPIElitesHParams",
    "MPPIHParams",
    "PLANNERS",
    "PlanInfo",
    "Planner",
    "PlannerEntry",
    "PUCTHParams",
    "PlannerState",
    "OptimisticModelFn",
    "OptimisticParams",
    "PriorFn",
    "ProposalFn",
    "RandomShootingHParams",
    "SearchOutput",
    "ValueFn",
    "cem",
    "cem_update",
    "check_hparams",
    "colored_noise",
    "discrete_cem",
    "discrete_random_shooting",
    "evaluate_candidates",
    "icem",
    "make_planner",
    "mcts",
    "mcts_search",
    "mppi",
    "mppi_elites",
    "optimistic",
    "particle_step_fn",
    "population_return",
    "planner_float_fields",
    "planner_hparams",
    "planner_names",
    "proposal_sequences",
    "random_shooting",
    "register_planner",
    "resolve_planner",
    "score_particles",
    "shift",
    "trajectory_return",
]
