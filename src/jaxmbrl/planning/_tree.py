"""Monte Carlo tree search over any model, with mctx (discrete actions).

The search itself is DeepMind's mctx (batched, jittable MuZero and Gumbel MuZero); this
module only turns a planner's `model_fn(key, params, obs, action) -> (next_obs, reward,
terminated)` into mctx's `recurrent_fn`, so that a learned ensemble, the true gymnax
dynamics (`envs.true_model`) or a latent model are searched alike:

- the tree's embedding is `(obs, alive, depth)`; a predicted termination ends the
  branch: the terminating step's reward counts, its discount is 0, and every later step
  of that branch has reward 0 and discount 0, as `trajectory_return` masks a particle;
- the tree is at most `horizon` (H) deep. A leaf's value is `value_fn(params, obs)` when
  one is given, else the mean discounted return of `num_particles` uniformly random
  action sequences through the model for the H - depth steps left (the "rollout" of
  classic MCTS; 0 for a terminated leaf). Without a `value_fn` every simulation thus
  sums the same H steps from the root: leaves at different depths are compared on one
  horizon (with a fixed rollout length, deeper subtrees would look better only for
  looking further: CartPole, true dynamics, 32 simulations, Gumbel: 102-118 steps with
  a fixed 20-step rollout, 500 with the H-step total);
- the prior is uniform unless `prior_fn(params, obs) -> logits [num_actions]` is given.

Selection is Gumbel MuZero's (Danihelka et al. 2022: sequential halving with Gumbel noise
at the root, which improves the policy even with few simulations) by default, or
MuZero's pUCT (Schrittwieser et al. 2020) with `selection="puct"`, acting on the most
visited root action. mctx is an optional extra (`pip install 'jaxmbrl[mctx]'`), imported
when a search is built.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxmbrl.planning._base import (
    NON_NEGATIVE,
    UNIT,
    PlanInfo,
    Planner,
    PlannerState,
    ValueFn,
    _like,
    _particle_returns,
    _strong,
    call_hparams,
    check_count,
    check_discrete,
)
from jaxmbrl.types import Array, MissingExtraError, ModelFn, Params, PRNGKey, PyTree, check_ranges

# `prior_fn(params, obs) -> [num_actions] float32` logits of a policy prior (unbatched).
PriorFn = Callable[[Params, PyTree], Array]

SELECTIONS = ("gumbel", "puct")


class MCTSHParams(NamedTuple):
    """Floats of `mcts` with Gumbel MuZero's selection (`MCTS_RANGES`).

    Attributes:
      discount: per-step discount of predicted rewards, in [0, 1].
      gumbel_scale: scale of the Gumbel noise that picks the root actions sequential
        halving considers (and breaks ties in the final choice); 0 searches
        deterministically. In [0, inf).
    """

    discount: float = 1.0
    gumbel_scale: float = 1.0


class PUCTHParams(NamedTuple):
    """Floats of `mcts` with MuZero's pUCT selection (`PUCT_RANGES`).

    Attributes:
      discount: per-step discount of predicted rewards, in [0, 1].
      pb_c_init: pUCT's exploration constant c1 (MuZero: 1.25), in [0, inf).
      dirichlet_fraction: weight of Dirichlet noise (alpha 0.3) mixed into the root
        prior; 0 for planning (MuZero explores with 0.25). In [0, 1].
    """

    discount: float = 1.0
    pb_c_init: float = 1.25
    dirichlet_fraction: float = 0.0


MCTS_RANGES = {"discount": UNIT, "gumbel_scale": NON_NEGATIVE}
PUCT_RANGES = {"discount": UNIT, "pb_c_init": NON_NEGATIVE, "dirichlet_fraction": UNIT}


class SearchOutput(NamedTuple):
    """One search from one state (unbatched).

    Attributes:
      action: [] int32, the action to take (Gumbel: the best of the most visited
        considered actions; pUCT: the most visited, ties to the higher Q).
      action_weights: [num_actions] float32 policy targets: Gumbel MuZero's improved
        policy softmax(prior logits + completed Q), or pUCT's visit distribution.
      root_value: [] float32, the search's value of the root state.
      visit_counts: [num_actions] int32 visits of each root action.
      q_values: [num_actions] float32 `reward + discount * value` of each root action
        (0 for an action never visited).
      plan: [H] int32, the action followed by the most visited path below it (0 past the
        tree's depth).
      tree: the whole `mctx.Tree` with its batch axis of 1.
    """

    action: Array
    action_weights: Array
    root_value: Array
    visit_counts: Array
    q_values: Array
    plan: Array
    tree: Any


def import_mctx():
    """`mctx`, or a `MissingExtraError` naming the extra to install."""
    try:
        import mctx
    except ImportError as err:
        raise MissingExtraError(f"mctx is not installed ({err}): pip install 'jaxmbrl[mctx]' to use "
                                f"tree search (planner mcts).") from None
    return mctx


def _finite(x: Array) -> Array:
    # A model stepped past a terminal state (or diverging) may give non-finite numbers; the
    # tree's min-max normalisation would turn one into NaN everywhere.
    x = jnp.asarray(x, jnp.float32)
    return jnp.where(jnp.isfinite(x), x, jnp.zeros((), jnp.float32))


def mcts_search(model_fn: ModelFn, spec, *, num_simulations: int, horizon: int, num_particles: int = 1,
                selection: str = "gumbel", discount: Any = 1.0, gumbel_scale: Any = 1.0,
                pb_c_init: Any = 1.25, dirichlet_fraction: Any = 0.0, value_fn: Optional[ValueFn] = None,
                prior_fn: Optional[PriorFn] = None, max_num_considered_actions: int = 16):
    """Builds `search(key, model_params, obs, hparams=None) -> SearchOutput`.

    `obs` is one unbatched state (any pytree `model_fn` takes); vmap `search` over states.
    `hparams` is an `MCTSHParams` (selection "gumbel") or `PUCTHParams` ("puct"); `None`
    uses the defaults, which the returned function carries as `search.hparams`.

    Args:
      model_fn: `(key, params, obs, action[] int32) -> (next_obs, reward, terminated)`.
      spec: the environment's `EnvSpec` (discrete actions).
      num_simulations: simulations per search (static).
      horizon: H >= 1, the lookahead: the tree's depth limit, the steps (tree edges,
        then random actions) each simulation sums without a `value_fn`, and the length
        of `SearchOutput.plan`.
      num_particles: P random rollouts averaged per leaf value (static).
      selection: "gumbel" (Gumbel MuZero, the default) or "puct" (MuZero).
      discount, gumbel_scale: defaults of `MCTSHParams` (selection "gumbel").
      discount, pb_c_init, dirichlet_fraction: defaults of `PUCTHParams` ("puct").
      value_fn: optional `(params, obs) -> []` leaf value instead of rollouts.
      prior_fn: optional `(params, obs) -> [num_actions]` prior logits (uniform without).
      max_num_considered_actions: actions sequential halving starts from at the root
        (Gumbel; at most num_actions).

    Raises:
      ValueError: for a continuous action space or invalid settings.
      MissingExtraError: when mctx is not installed.
    """
    name = "mcts"
    if selection not in SELECTIONS:
        raise ValueError(f"{name}: selection={selection!r} is unknown; choose one of {SELECTIONS}")
    check_discrete(name, spec)
    num_simulations = check_count(name, "num_simulations", num_simulations)
    horizon = check_count(name, "horizon", horizon)
    num_particles = check_count(name, "num_particles", num_particles)
    considered = min(check_count(name, "max_num_considered_actions", max_num_considered_actions),
                     spec.num_actions)
    for arg, fn in (("value_fn", value_fn), ("prior_fn", prior_fn)):
        if fn is not None and not callable(fn):
            raise ValueError(f"{name}: {arg} must be callable (params, obs) -> ..., got {fn!r}")
    if selection == "gumbel":
        defaults, ranges = MCTSHParams(discount=discount, gumbel_scale=gumbel_scale), MCTS_RANGES
    else:
        name = "mcts_puct"
        defaults = PUCTHParams(discount=discount, pb_c_init=pb_c_init, dirichlet_fraction=dirichlet_fraction)
        ranges = PUCT_RANGES
    check_ranges(name, defaults, ranges)
    mctx = import_mctx()
    num_actions = spec.num_actions

    def prior(params, obs):
        if prior_fn is None:
            return jnp.zeros((num_actions,), jnp.float32)
        return _finite(prior_fn(params, obs)).reshape((num_actions,))

    if getattr(model_fn, "over_population", None) is not None:
        # The P rollouts as a population of P candidates of one particle: one model call
        # per step for all of them.
        def rollout_step(key, params, obs, action):
            return model_fn.over_population(key, params, obs, action)
    else:
        def rollout_step(key, params, obs, action):
            one = jax.tree.map(lambda x: x[0], obs)
            keys = jax.random.split(key, num_particles)
            out = jax.vmap(model_fn, in_axes=(0, None, 0, 0))(keys, params, one, action)
            return jax.tree.map(lambda x: x[None], out)

    def counted(steps_left):
        # Steps past the `steps_left` still in the horizon earn nothing and end nothing.
        def step_fn(key, params, carry, action):
            obs, t = carry
            next_obs, reward, terminated = rollout_step(key, params, obs, action)
            inside = t < steps_left
            reward = jnp.where(inside, jnp.asarray(reward, jnp.float32), jnp.zeros((), jnp.float32))
            return (next_obs, t + 1), reward, terminated & inside

        return step_fn

    def leaf_value(key, params, obs, alive, depth, hp):
        if value_fn is not None:
            value = value_fn(params, obs)
        else:
            action_key, eval_key = jax.random.split(key)
            actions = jax.random.randint(action_key, (horizon, num_particles), 0, num_actions, jnp.int32)
            start = (jax.tree.map(lambda x: jnp.broadcast_to(x, (1, num_particles) + jnp.shape(x)), obs),
                     jnp.zeros((1, num_particles), jnp.int32))
            returns = _particle_returns(counted(horizon - depth), params, eval_key, start, actions, hp.discount,
                                        None, (1, num_particles))
            value = _finite(returns).mean()
        return jnp.where(alive, _finite(value).reshape(()), jnp.zeros((), jnp.float32))

    def recurrent_fn(params, key, action, embedding):
        model_params, hp = params
        obs, alive, depth = embedding
        batch = action.shape[0]
        step_key, value_key = jax.random.split(key)
        next_obs, reward, terminated = jax.vmap(model_fn, in_axes=(0, None, 0, 0))(
            jax.random.split(step_key, batch), model_params, obs, action.astype(jnp.int32))
        next_obs = _like(next_obs, obs)
        # The terminating step's own reward counts; nothing after it does.
        reward = jnp.where(alive, _finite(reward).reshape((batch,)), jnp.zeros((), jnp.float32))
        next_alive = alive & ~jnp.asarray(terminated, jnp.bool_).reshape((batch,))
        step_discount = jnp.where(next_alive, hp.discount, jnp.zeros((), jnp.float32))
        value = jax.vmap(leaf_value, in_axes=(0, None, 0, 0, 0, None))(
            jax.random.split(value_key, batch), model_params, next_obs, next_alive, depth + 1, hp)
        logits = jax.vmap(prior, in_axes=(None, 0))(model_params, next_obs)
        out = mctx.RecurrentFnOutput(reward=reward, discount=step_discount, prior_logits=logits, value=value)
        return out, (next_obs, next_alive, depth + 1)

    def principal_variation(tree, action):
        # The chosen action, then the most visited child at each depth (batch row 0).
        first = tree.children_index[0, tree.ROOT_INDEX, action]

        def down(node, _):
            valid = node >= 0
            at = jnp.maximum(node, 0)
            best = jnp.argmax(tree.children_visits[0, at]).astype(jnp.int32)
            best = jnp.where(valid, best, jnp.zeros((), jnp.int32))
            child = jnp.where(valid, tree.children_index[0, at, best], -1)
            return child, best

        _, rest = jax.lax.scan(down, first, None, length=horizon - 1)
        return jnp.concatenate([action[None], rest])

    def search(key: PRNGKey, model_params: Params, obs: PyTree, hparams=None) -> SearchOutput:
        hp = call_hparams(name, hparams, defaults, ranges)
        obs = jax.tree.map(_strong, obs)
        root_key, search_key = jax.random.split(key)
        alive, depth = jnp.ones((1,), jnp.bool_), jnp.zeros((1,), jnp.int32)
        root = mctx.RootFnOutput(
            prior_logits=prior(model_params, obs)[None],
            value=leaf_value(root_key, model_params, obs, alive[0], depth[0], hp)[None],
            embedding=(jax.tree.map(lambda x: x[None], obs), alive, depth),
        )
        params = (model_params, hp)
        if selection == "gumbel":
            out = mctx.gumbel_muzero_policy(params, search_key, root, recurrent_fn, num_simulations,
                                            max_depth=horizon, max_num_considered_actions=considered,
                                            gumbel_scale=hp.gumbel_scale)
        else:
            out = mctx.muzero_policy(params, search_key, root, recurrent_fn, num_simulations, max_depth=horizon,
                                     pb_c_init=hp.pb_c_init, dirichlet_fraction=hp.dirichlet_fraction)
        tree = out.search_tree
        summary = tree.summary()
        visits, q = summary.visit_counts[0], summary.qvalues[0].astype(jnp.float32)
        if selection == "gumbel":
            action = out.action[0].astype(jnp.int32)
        else:
            # Most visited; among equals the higher Q (the bonus stays below one visit).
            spread = jnp.maximum(q.max() - q.min(), 1e-8)
            action = jnp.argmax(visits + 0.5 * (q - q.min()) / spread).astype(jnp.int32)
        return SearchOutput(action=action, action_weights=out.action_weights[0].astype(jnp.float32),
                            root_value=summary.value[0].astype(jnp.float32), visit_counts=visits.astype(jnp.int32),
                            q_values=q, plan=principal_variation(tree, action), tree=tree)

    search.hparams = defaults
    return search


def mcts(model_fn: ModelFn, spec, *, num_simulations: int, horizon: int, num_particles: int = 1,
         selection: str = "gumbel", discount: Any = 1.0, gumbel_scale: Any = 1.0, pb_c_init: Any = 1.25,
         dirichlet_fraction: Any = 0.0, value_fn: Optional[ValueFn] = None, prior_fn: Optional[PriorFn] = None,
         max_num_considered_actions: int = 16) -> Planner:
    """Monte Carlo tree search as a `Planner` (discrete actions; arguments as `mcts_search`).

    `plan(key, state, model_params, obs, hparams=None)` runs one search from `obs` and
    returns its action (int32 scalar); `PlanInfo.expected_return` is the root's search
    value and `PlanInfo.plan` the principal variation [H]. A search starts afresh at every
    call: `PlannerState.mean` only records the last search's `action_weights`
    [1, num_actions] (uniform before the first).
    """
    search = mcts_search(model_fn, spec, num_simulations=num_simulations, horizon=horizon,
                         num_particles=num_particles, selection=selection, discount=discount,
                         gumbel_scale=gumbel_scale, pb_c_init=pb_c_init, dirichlet_fraction=dirichlet_fraction,
                         value_fn=value_fn, prior_fn=prior_fn,
                         max_num_considered_actions=max_num_considered_actions)
    num_actions = spec.num_actions

    def init() -> PlannerState:
        return PlannerState(mean=jnp.full((1, num_actions), 1.0 / num_actions, jnp.float32))

    def plan(key, state, model_params, obs, hparams=None):
        del state  # each search builds its tree from scratch
        out = search(key, model_params, obs, hparams)
        return out.action, PlannerState(mean=out.action_weights[None]), PlanInfo(out.root_value, out.plan)

    return Planner(init, plan, search.hparams)


def registered_factory(selection: str):
    """`mcts` under the registry's generic names: `num_samples` is the simulations per
    search, `horizon` the rollout length, `num_particles` the rollouts per leaf."""

    def factory(model_fn, spec, *, horizon: int, num_samples: int, num_particles: int = 1,
                value_fn: Optional[ValueFn] = None) -> Planner:
        return mcts(model_fn, spec, num_simulations=num_samples, horizon=horizon, num_particles=num_particles,
                    selection=selection, value_fn=value_fn)

    factory.__name__ = "mcts" if selection == "gumbel" else f"mcts_{selection}"
    return factory
